import { Wallet, decryptKeystoreJson, encryptKeystoreJson, scrypt, toUtf8Bytes } from 'ethers'
import { describe, expect, it } from 'vitest'
import { useNativeScrypt } from '../src/native-scrypt.js'

describe('keystores under Node\'s scrypt', () => {
  it('opens what ethers\' own scrypt sealed, and seals what it opens, with the same bytes', async () => {
    const account = Wallet.createRandom()
    const options = { scrypt: { N: 1 << 12 } }
    // Sealed before the switch: ethers' JavaScript scrypt.
    const sealedByEthers = await encryptKeystoreJson({ address: account.address, privateKey: account.privateKey }, 'pw', options)
    // ethers' JavaScript scrypt reports progress; Node's does not: which one runs is visible.
    const derive = async (): Promise<{ key: string, progressCalls: number }> => {
      let progressCalls = 0
      const key = await scrypt(toUtf8Bytes('pw'), toUtf8Bytes('salt'), 1 << 10, 8, 1, 32, () => { progressCalls++ })
      return { key, progressCalls }
    }
    const byEthers = await derive()
    expect(byEthers.progressCalls).toBeGreaterThan(0)
    useNativeScrypt()
    expect(await derive()).toEqual({ key: byEthers.key, progressCalls: 0 })
    // The MAC is over the derived key: a different scrypt would refuse the password.
    expect((await decryptKeystoreJson(sealedByEthers, 'pw')).privateKey).toBe(account.privateKey)
    await expect(decryptKeystoreJson(sealedByEthers, 'wrong')).rejects.toThrow(/incorrect password/)
    // Same salt and IV give the same keystore, byte for byte, whichever scrypt made it.
    const { Crypto: crypto } = JSON.parse(sealedByEthers) as { Crypto: { kdfparams: { salt: string }, cipherparams: { iv: string } } }
    const again = await encryptKeystoreJson({ address: account.address, privateKey: account.privateKey }, 'pw', {
      ...options, salt: `0x${crypto.kdfparams.salt}`, iv: `0x${crypto.cipherparams.iv}`, uuid: `0x${(JSON.parse(sealedByEthers) as { id: string }).id.replaceAll('-', '')}`
    })
    expect(JSON.parse(again)).toEqual(JSON.parse(sealedByEthers))
  })

  it('handles the cost gpumesh init uses (N = 2^17), above Node\'s default memory cap', async () => {
    useNativeScrypt()
    const account = Wallet.createRandom()
    const sealed = await account.encrypt('pw')
    expect(JSON.parse(sealed)).toMatchObject({ Crypto: { kdfparams: { n: 1 << 17 } } })
    expect((await Wallet.fromEncryptedJson(sealed, 'pw')).address).toBe(account.address)
  })
})
