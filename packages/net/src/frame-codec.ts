import { Uint8ArrayList } from 'uint8arraylist'
import { MAX_ERROR_MESSAGE_CHARS, STATUS_ERROR, STATUS_OK } from './constants.js'
import type { RemoteErrorCode } from './errors.js'

/** Longest varint length prefix accepted: 5 bytes hold lengths up to 2^35 - 1. */
export const MAX_LENGTH_PREFIX_BYTES = 5

/** Unsigned LEB128 varint, the libp2p length prefix. */
export function encodeVarint (value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`cannot encode ${value} as a varint`)
  const out: number[] = []
  let rest = value
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80)
    rest = Math.floor(rest / 0x80)
  }
  out.push(rest)
  return Uint8Array.from(out)
}

export type VarintResult =
  | { kind: 'value', value: number, bytes: number }
  | { kind: 'incomplete' }
  | { kind: 'invalid' }

/** Reads a varint at the start of `buf` without consuming it. */
export function decodeVarint (buf: Uint8ArrayList): VarintResult {
  let value = 0
  let factor = 1
  for (let i = 0; i < MAX_LENGTH_PREFIX_BYTES; i++) {
    if (i >= buf.byteLength) return { kind: 'incomplete' }
    const byte = buf.get(i)
    value += (byte & 0x7f) * factor
    if ((byte & 0x80) === 0) return { kind: 'value', value, bytes: i + 1 }
    factor *= 0x80
  }
  return { kind: 'invalid' }
}

/** A length-prefixed frame, as a list so the payload is not copied. */
export function encodeFrame (payload: Uint8Array | Uint8ArrayList): Uint8ArrayList {
  return new Uint8ArrayList(encodeVarint(payload.byteLength), payload)
}

/** Body of an error envelope. */
export interface RemoteErrorBody {
  code: RemoteErrorCode
  message: string
}

export type ResponseEnvelope =
  | { status: 'ok', payload: Uint8Array }
  | { status: 'error', code: RemoteErrorCode, message: string }

/** `0x00 ‖ payload` */
export function encodeOkEnvelope (payload: Uint8Array): Uint8ArrayList {
  return new Uint8ArrayList(Uint8Array.of(STATUS_OK), payload)
}

/** `0x01 ‖ UTF-8 JSON {"code","message"}` */
export function encodeErrorEnvelope (code: RemoteErrorCode, message: string): Uint8ArrayList {
  const body: RemoteErrorBody = { code, message: message.slice(0, MAX_ERROR_MESSAGE_CHARS) }
  return new Uint8ArrayList(Uint8Array.of(STATUS_ERROR), new TextEncoder().encode(JSON.stringify(body)))
}

/** Parses a response envelope; `undefined` when it is malformed. */
export function decodeEnvelope (frame: Uint8Array): ResponseEnvelope | undefined {
  const status = frame[0]
  if (status === STATUS_OK) return { status: 'ok', payload: frame.subarray(1) }
  if (status !== STATUS_ERROR) return undefined
  try {
    const body: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(frame.subarray(1)))
    if (typeof body !== 'object' || body == null) return undefined
    const { code, message } = body as Record<string, unknown>
    if (typeof code !== 'string' || code.length === 0 || code.length > 64) return undefined
    return {
      status: 'error',
      code,
      message: typeof message === 'string' ? message.slice(0, MAX_ERROR_MESSAGE_CHARS) : ''
    }
  } catch {
    return undefined
  }
}
