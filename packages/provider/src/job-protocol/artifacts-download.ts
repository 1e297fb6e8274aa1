import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { JOB_DATA_FRAME_BYTES, encodeArtifactsHeader } from '@gpumesh/protocol'
import type { Send } from './wire.js'

/**
 * Sends a job's artifacts (a tar.gz stream) to its renter: packed to a file in the job's directory
 * first, so the header can carry the size and sha256 the renter verifies, then sent in data frames.
 * The file is removed afterwards, whatever happened. Returns the size sent.
 */
export async function sendArtifacts (artifacts: Readable, jobRoot: string, send: Send, signal: AbortSignal): Promise<number> {
  const file = join(jobRoot, `.artifacts-${randomBytes(6).toString('hex')}.tar.gz`)
  try {
    const hash = createHash('sha256')
    const tap = new Transform({ transform (chunk: Buffer, _enc, done) { hash.update(chunk); done(null, chunk) } })
    await pipeline(artifacts, tap, createWriteStream(file, { mode: 0o600 }), { signal })
    const size = (await stat(file)).size
    await send(encodeArtifactsHeader({ type: 'artifacts-header', ok: true, size, sha256: `0x${hash.digest('hex')}` }))
    for await (const chunk of createReadStream(file, { highWaterMark: JOB_DATA_FRAME_BYTES, signal })) {
      await send(chunk as Buffer)
    }
    return size
  } finally {
    await rm(file, { force: true })
  }
}
