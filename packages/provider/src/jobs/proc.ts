import { readFile } from 'node:fs/promises'
import { kill } from 'node:process'

/** What /proc/<pid>/stat says about a process that matters for recovery. */
export interface ProcessStat {
  pid: number
  /** One-letter state: R, S, D, Z (zombie), T, ... */
  state: string
  /** Field 22: start time in clock ticks since boot. Together with the pid, it names one process. */
  startTime: number
}

/** Parses /proc/<pid>/stat text. The command name (field 2) may hold spaces and parentheses. */
export function parseProcStat (text: string): ProcessStat | null {
  const open = text.indexOf('(')
  const close = text.lastIndexOf(')')
  if (open < 0 || close < open) return null
  const pid = Number(text.slice(0, open).trim())
  // Fields from 3 on, after the command name.
  const rest = text.slice(close + 1).trim().split(/\s+/)
  const state = rest[0]
  const startTime = Number(rest[19]) // field 22 is the 20th after field 2
  if (!Number.isSafeInteger(pid) || state === undefined || !Number.isSafeInteger(startTime)) return null
  return { pid, state, startTime }
}

/** Reads /proc/<pid>/stat; null when there is no such process (or no /proc). */
export async function readProcessStat (pid: number): Promise<ProcessStat | null> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return null
  }
}

/**
 * True when the process `pid` is alive and is the one that started at `startTime` (not a reused pid,
 * not a zombie waiting to be reaped).
 */
export async function isSameProcessAlive (pid: number, startTime: number): Promise<boolean> {
  const stat = await readProcessStat(pid)
  return stat !== null && stat.startTime === startTime && stat.state !== 'Z' && stat.state !== 'X'
}

/** Sends a signal to a whole process group; false when the group no longer exists. */
export function signalGroup (pgid: number, signal: NodeJS.Signals): boolean {
  try {
    kill(-pgid, signal)
    return true
  } catch {
    return false
  }
}
