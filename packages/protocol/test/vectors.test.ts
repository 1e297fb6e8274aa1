/**
 * The committed test vectors (fixtures/vectors.json) must match what the package computes now, and
 * ethers must agree on every digest and signer. Regenerate after a deliberate change with
 * `UPDATE_VECTORS=1 npx vitest run packages/protocol/test/vectors.test.ts`.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { TypedDataEncoder, verifyTypedData } from 'ethers'
import { describe, expect, it } from 'vitest'
import { EIP712_TYPE_STRINGS, ethersDomain, typeHash, typedData, verifyDigest, hexToBytes } from '@gpumesh/protocol'
import { keccak256, toUtf8Bytes } from 'ethers'
import { DOMAIN } from './samples.js'
import { buildVectors, vectorCases } from './vectors.js'

const file = new URL('./fixtures/vectors.json', import.meta.url)

describe('EIP-712 test vectors', () => {
  const built = buildVectors()
  if (process.env.UPDATE_VECTORS === '1') writeFileSync(file, JSON.stringify(built, null, 2) + '\n')

  it('match the committed file', () => {
    const committed = JSON.parse(readFileSync(file, 'utf8')) as unknown
    expect(built).toEqual(committed)
  })

  for (const c of vectorCases()) {
    it(`${c.primaryType}: ethers agrees on type string, digest and signer`, () => {
      const payload = typedData(c.primaryType, c.value as never, DOMAIN)
      const types = { [c.primaryType]: payload.types[c.primaryType] ?? [] }
      expect(TypedDataEncoder.from(types).encodeType(c.primaryType)).toBe(EIP712_TYPE_STRINGS[c.primaryType])
      expect(keccak256(toUtf8Bytes(EIP712_TYPE_STRINGS[c.primaryType]))).toBe(`0x${Buffer.from(typeHash(c.primaryType)).toString('hex')}`)
      const digest = TypedDataEncoder.hash(ethersDomain(DOMAIN), types, payload.message)
      expect(`0x${Buffer.from(c.digest(c.value, DOMAIN)).toString('hex')}`).toBe(digest)
      const signature = c.sign(c.value, c.key, DOMAIN)
      expect(verifyTypedData(ethersDomain(DOMAIN), types, payload.message, signature.signature)).toBe(c.signer)
      expect(verifyDigest(hexToBytes(digest, 32), signature, c.signer)).toBe(c.signer)
    })
  }
})
