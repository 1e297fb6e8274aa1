import { describe, expect, it } from 'vitest'
import { createCliLogger, readableLine } from '../src/log.js'

describe('CLI logs', () => {
  it('writes JSON lines when not on a terminal', () => {
    const lines: string[] = []
    const logger = createCliLogger({ json: true, base: { pid: 7 }, write: (l) => { lines.push(l) } })
    logger.child({ module: 'offers' }).info({ sequence: 3 }, 'offer published')
    expect(lines).toHaveLength(1)
    expect(JSON.parse(lines[0] as string)).toMatchObject({ level: 30, pid: 7, module: 'offers', sequence: 3, msg: 'offer published' })
  })

  it('writes one readable line per record on a terminal', () => {
    const lines: string[] = []
    const logger = createCliLogger({ json: false, level: 'debug', write: (l) => { lines.push(l) } })
    logger.child({ module: 'leases' }).warn({ code: 'NO_CAPACITY', gpus: [1, 2] }, 'lease rejected')
    logger.debug('probing')
    expect(lines).toEqual([
      expect.stringMatching(/^\d\d:\d\d:\d\d warn {2}leases: lease rejected code=NO_CAPACITY gpus=\[1,2\]\n$/),
      expect.stringMatching(/^\d\d:\d\d:\d\d debug probing\n$/)
    ])
    expect(readableLine('not json\n')).toBe('not json\n')
  })
})
