import { createGossipExchange, type GossipExchangeOptions } from './gossip-exchange.js'
import { createStreamExchange, type StreamExchangeOptions } from './stream-exchange.js'
import type { GradientExchange } from './types.js'

export { createGossipExchange, DEFAULT_CHUNK_BYTES, type GossipExchangeOptions } from './gossip-exchange.js'
export { createStreamExchange, GRADIENT_PROTOCOL, type StreamExchangeOptions } from './stream-exchange.js'
export { createFaultInjector, type FaultDecision, type FaultInjection, type FaultInjector } from './fault-injector.js'
export { gradientTopic, resolveMaxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES } from './limits.js'
export {
  GradientExchangeError,
  type ExchangeMode, type ExchangeStats, type GradientExchange, type GradientExchangeOptions, type GradientHandler, type PublishReport
} from './types.js'

export type CreateGradientExchangeOptions = ({ readonly mode: 'gossip' } & GossipExchangeOptions) | ({ readonly mode: 'stream' } & StreamExchangeOptions)

export function createGradientExchange (options: CreateGradientExchangeOptions): GradientExchange {
  return options.mode === 'gossip' ? createGossipExchange(options) : createStreamExchange(options)
}
