import { describe, expectTypeOf, it } from 'vitest'
import type { Offer, OfferedGpus, Order, OrderRequirements } from '@gpumesh/protocol'
import type { Candidate, MatcherOffer, MatcherOfferedGpus, MatcherOrder, MatcherOrderRequirements, OrderBook } from '@gpumesh/matcher'

// The matcher reads the wire types through structural mirrors (src/types.ts); tsc checks that the
// protocol's decoded messages still fit them, and that a book of protocol offers hands them back.
describe('protocol messages fit the matcher', () => {
  it('offers and orders are assignable', () => {
    expectTypeOf<OfferedGpus>().toExtend<MatcherOfferedGpus>()
    expectTypeOf<Offer>().toExtend<MatcherOffer>()
    expectTypeOf<OrderRequirements>().toExtend<MatcherOrderRequirements>()
    expectTypeOf<Order>().toExtend<MatcherOrder>()
    expectTypeOf<ReturnType<OrderBook<Offer>['get']>>().toEqualTypeOf<Offer | undefined>()
    expectTypeOf<Candidate<Offer>['offer']>().toEqualTypeOf<Offer>()
  })
})
