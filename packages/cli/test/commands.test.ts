import { describe, expect, it } from 'vitest'
import { COMMAND_TABLE, loadCommand, main, type CommandContext } from '../src/index.js'

function context (): { ctx: CommandContext, out: () => string } {
  let out = ''
  return {
    ctx: { env: {}, cwd: process.cwd(), stdout: (t) => { out += t }, stderr: (t) => { out += t }, signal: new AbortController().signal, interactive: false },
    out: () => out
  }
}

describe('command table', () => {
  it('names each command as its module does, once', async () => {
    const names = COMMAND_TABLE.map((e) => e.name)
    expect(new Set(names).size).toBe(names.length)
    for (const entry of COMMAND_TABLE) {
      const command = await loadCommand(entry)
      expect(command.name).toBe(entry.name)
      expect(command.summary.length).toBeGreaterThan(0)
    }
  })

  it('refuses a row whose module names another command', async () => {
    const init = COMMAND_TABLE.find((e) => e.name === 'init')
    await expect(loadCommand({ name: 'not-init', load: init!.load })).rejects.toThrow(/names "not-init"/)
  })

  it('lists every command in --help, in table order, with its summary', async () => {
    const { ctx, out } = context()
    expect(await main(['--help'], ctx)).toBe(0)
    const listed = out().split('\n').filter((l) => l.startsWith('  ')).map((l) => l.trim())
    expect(listed).toHaveLength(COMMAND_TABLE.length)
    for (const [i, entry] of COMMAND_TABLE.entries()) {
      const command = await loadCommand(entry)
      expect(listed[i]).toBe(`${entry.name.padEnd(Math.max(...COMMAND_TABLE.map((e) => e.name.length), 8))}  ${command.summary}`.trim())
    }
  })

  it('prints one command\'s usage for "COMMAND --help"', async () => {
    const { ctx, out } = context()
    expect(await main(['lease', 'status', '--help'], ctx)).toBe(0)
    expect(out()).toMatch(/^usage: gpumesh lease status \[LEASE_ID\]/)
  })
})
