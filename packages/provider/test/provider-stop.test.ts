/**
 * `provider.stop()` when a part fails to stop: the parts after it still stop, the ledger is closed and
 * the data directory's lock released, so the operator can start the daemon again at once.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { startProvider, tempDir, type TestProvider } from '../../../test/provider-helpers.js'

describe('provider.stop() with a failing part', () => {
  const started: TestProvider[] = []
  let removeDir: (() => Promise<void>) | null = null
  afterEach(async () => {
    for (const daemon of started.splice(0)) await daemon.provider.stop().catch(() => {})
    await removeDir?.()
  })

  it('closes the ledger and releases the data directory when a step throws', async () => {
    const dir = await tempDir()
    removeDir = dir.remove
    const first = await startProvider({ dataDir: dir.dir, gpus: 2 })
    started.push(first)
    const publisher = first.provider.publisher
    if (publisher === null) throw new Error('the provider has no publisher')
    vi.spyOn(publisher, 'stop').mockRejectedValueOnce(new Error('the publisher could not stop'))

    await expect(first.provider.stop()).rejects.toThrow('the publisher could not stop')
    // The steps after the failing one ran: libp2p stopped, the ledger closed, the provider not running.
    expect(first.provider.node).toBeNull()
    expect(first.provider.ledger.isOpen).toBe(false)
    expect(first.provider.running).toBe(false)

    // The lock is free: a second daemon starts on the same data directory and reads the same ledger.
    const second = await startProvider({ dataDir: dir.dir, gpus: 2 })
    started.push(second)
    expect(second.provider.running).toBe(true)
    expect(second.provider.ledger.listGpus()).toHaveLength(2)
    // A stop after the failed one does nothing more and does not throw.
    await first.provider.stop()
  })
})
