/** The RabbitMQ transport: a reconnecting broker connection, per-job topology and signed envelopes. */
export { BrokerUnavailableError, createBrokerConnection, describeBrokerFailure, probeBroker, type BrokerConnection, type BrokerConnectionOptions, type PublishOutcome } from './broker-connection.js'
export { BrokerRequestRefusedError, BrokerRequestTimeoutError } from './control-messages.js'
export { discoverJobs, type DiscoveredJob } from './discovery.js'
export { EnvelopeError, openEnvelope, sealEnvelope, type Envelope, type EnvelopeHeader } from './envelope.js'
export { createAmqpJobTransport, DEFAULT_MAX_MESSAGE_BYTES, type AmqpJobTransport, type AmqpJobTransportOptions, type AmqpJobTransportStats } from './job-transport.js'
export { BROADCAST_KEY, DISCOVERY_EXCHANGE, jobNames, type JobNames } from './names.js'
