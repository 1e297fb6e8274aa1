import type { FrameStream } from '@gpumesh/net'
import { Refusal } from './refusal.js'
import { within } from '@gpumesh/net'

/**
 * The bundle a renter streams after its `job-submit`: exactly `total` bytes, each frame within
 * `frameTimeoutMs` of the previous one. `frames` yields them (for the job manager to extract);
 * `refusal` is what stopped the upload (the renter's fault, or the provider stopping), if anything —
 * it stands above whatever error extracting the cut-short bundle then raised.
 */
export class BundleUpload {
  readonly #stream: Pick<FrameStream, 'read'>
  readonly #total: number
  readonly #frameTimeoutMs: number
  readonly #signal: AbortSignal
  #received = 0
  #refusal: Refusal | null = null

  constructor (stream: Pick<FrameStream, 'read'>, total: number, frameTimeoutMs: number, signal: AbortSignal) {
    this.#stream = stream
    this.#total = total
    this.#frameTimeoutMs = frameTimeoutMs
    this.#signal = signal
  }

  get received (): number { return this.#received }
  get refusal (): Refusal | null { return this.#refusal }

  async * frames (): AsyncGenerator<Uint8Array> {
    while (this.#received < this.#total) {
      let frame: Uint8Array | null
      try {
        frame = await this.#stream.read({ signal: within(this.#frameTimeoutMs, this.#signal) })
      } catch (err) {
        throw this.#refuse(this.#signal.aborted
          ? new Refusal('SHUTTING_DOWN', 'the upload was cut short', { cause: err })
          : new Refusal('TIMEOUT', 'the bundle stopped arriving', { cause: err }))
      }
      if (frame === null) throw this.#refuse(new Refusal('MALFORMED', `the bundle ended after ${this.#received} of ${this.#total} bytes`))
      this.#received += frame.byteLength
      if (this.#received > this.#total) throw this.#refuse(new Refusal('TOO_LARGE', `more bundle bytes than the ${this.#total} announced`))
      yield frame
    }
  }

  #refuse (refusal: Refusal): Refusal {
    this.#refusal = refusal
    return refusal
  }
}
