import type { FrameStream } from '@gpumesh/net'
import { decodeMessage, type Terminate, type Voucher } from '@gpumesh/protocol'
import { VoucherRefusedError } from '../jobs/index.js'
import type { Refusal } from './refusal.js'
import { reply, respond, type Send } from './wire.js'

const LOOP_TYPES = ['voucher', 'terminate'] as const

export interface RenterMessagesComponents {
  stream: Pick<FrameStream, 'read'>
  send: Send
  /** Checks and stores a voucher (the job manager); throws VoucherRefusedError to refuse it. */
  acceptVoucher: (voucher: Voucher) => void
  /** The renter cancels (checked and passed to the job manager). */
  terminate: (request: Terminate) => Promise<void>
  /** The refusal an error is answered with (an unexpected one: INTERNAL, logged). */
  asRefusal: (err: unknown) => Refusal
  /** Frames that are neither vouchers nor terminates before the stream is dropped. */
  maxBadFrames: number
}

/**
 * What the renter sends while it follows its job's events: vouchers (each answered ok or with its
 * refusal code) and terminates. Ends when the renter closes its side; throws after `maxBadFrames`
 * frames it cannot read. No deadline: a silent renter is the meter's business (no voucher within
 * the payment grace ⇒ UNPAID).
 */
export async function readRenterMessages (c: RenterMessagesComponents, signal: AbortSignal): Promise<void> {
  let bad = 0
  for (;;) {
    const frame = await c.stream.read({ signal })
    if (frame === null) return
    let message
    try {
      message = decodeMessage(frame, LOOP_TYPES)
    } catch (err) {
      await c.send(reply('voucher', 'MALFORMED', `expected a voucher or a terminate: ${(err as Error).message}`))
      if (++bad >= c.maxBadFrames) throw new Error('too many bad frames')
      continue
    }
    if (message.type === 'terminate') {
      const request = message
      await respond(c.send, 'terminate', async () => { await c.terminate(request) }, c.asRefusal)
      continue
    }
    try {
      c.acceptVoucher(message)
      await c.send(reply('voucher'))
    } catch (err) {
      const refusal = err instanceof VoucherRefusedError ? err : c.asRefusal(err)
      await c.send(reply('voucher', refusal.code, refusal.message))
    }
  }
}
