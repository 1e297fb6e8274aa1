import { scrypt as nodeScrypt } from 'node:crypto'
import { scrypt } from 'ethers'

let registered = false

/**
 * Payment keystores are sealed with scrypt (N = 2^17 for the ones `gpumesh init` writes). ethers
 * computes scrypt in JavaScript on the main thread; Node computes the same function in OpenSSL on its
 * thread pool in about half the time. This hands ethers Node's through the hook ethers provides for
 * it (`scrypt.register`), so creating and unlocking a keystore — every command that signs — waits
 * about half a second less. Same function, same bytes: keystores stay readable by any wallet.
 */
export function useNativeScrypt (): void {
  if (registered) return
  registered = true
  scrypt.register(async (passwd, salt, N, r, p, dkLen) => await new Promise<Uint8Array>((resolve, reject) => {
    // scrypt needs 128·N·r bytes of memory (more than Node's 32 MiB default for N = 2^17), plus its buffers.
    nodeScrypt(passwd, salt, dkLen, { N, r, p, maxmem: 128 * N * r + 256 * r * p + (1 << 20) }, (err, key) => {
      if (err === null) resolve(new Uint8Array(key))
      else reject(err)
    })
  }))
}
