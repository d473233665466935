/**
 * The cost model of the paper (Exploring the Impact of Serverless Computing on Peer To Peer
 * Training Machine Learning, section V-B2), per peer and per epoch:
 *
 *   (1) Cost per peer, serverless     = [Lambda cost/s x number of batches + EC2 cost/s] x time
 *   (2) Cost per peer, instance-based = EC2 cost/s x computation time
 *
 * "time" is the time to compute one epoch's gradients: with offload every batch of the epoch is
 * one Lambda invocation and they run in parallel, so each of the `batches` functions is billed
 * for the whole time. The paper leaves out request fees (Lambda requests, Step Functions
 * transitions, S3 requests); they are added here as a separate term, zero with a price table
 * that zeroes them (as the reproduction test does).
 */

/** Inputs of one comparison; prices in currency units per second, times in seconds. */
export interface CostModelInputs {
  /** batches one peer computes per epoch (ceil(train samples / peers / batch size)) */
  readonly batchesPerEpoch: number
  readonly epochs: number
  readonly peers: number
  readonly instanceBased: {
    readonly instanceType: string
    readonly pricePerSecond: number
    /** time to compute one epoch's gradients on the instance */
    readonly secondsPerEpoch: number
  }
  readonly serverless: {
    /** the small instance the peer itself runs on */
    readonly instanceType: string
    readonly instancePricePerSecond: number
    readonly lambdaMemoryMb: number
    readonly lambdaPricePerSecond: number
    /** time to compute one epoch's gradients with every batch offloaded */
    readonly secondsPerEpoch: number
    /** request fees per batch (Lambda request, state transitions, S3 requests); 0 in the paper */
    readonly requestFeesPerBatch: number
  }
}

export interface ArchitectureCost {
  readonly secondsPerEpoch: number
  /** one peer, one epoch: equation 1 or 2 (plus request fees for serverless) */
  readonly costPerPeerPerEpoch: number
  /** wall time of the job: the peers work in parallel */
  readonly secondsPerJob: number
  /** every peer, every epoch */
  readonly costPerJob: number
}

export interface ServerlessCost extends ArchitectureCost {
  /** the parts of costPerPeerPerEpoch */
  readonly lambdaCostPerPeerPerEpoch: number
  readonly instanceCostPerPeerPerEpoch: number
  readonly requestFeesPerPeerPerEpoch: number
}

export interface CostComparison {
  readonly instanceBased: ArchitectureCost
  readonly serverless: ServerlessCost
  /** serverless cost / instance-based cost (the paper's "5.36x more") */
  readonly costRatio: number
  /** instance-based time / serverless time */
  readonly speedup: number
  readonly cheaper: 'instance-based' | 'serverless'
}

/** Equations 1 and 2 of the paper, per peer and epoch, then scaled to the job. */
export function compareCosts(inputs: CostModelInputs): CostComparison {
  const { batchesPerEpoch: batches, epochs, peers } = inputs
  const s = inputs.serverless
  const lambda = s.lambdaPricePerSecond * batches * s.secondsPerEpoch
  const smallInstance = s.instancePricePerSecond * s.secondsPerEpoch
  const fees = s.requestFeesPerBatch * batches
  const serverlessPerEpoch = lambda + smallInstance + fees
  const i = inputs.instanceBased
  const instancePerEpoch = i.pricePerSecond * i.secondsPerEpoch
  return {
    instanceBased: {
      secondsPerEpoch: i.secondsPerEpoch,
      costPerPeerPerEpoch: instancePerEpoch,
      secondsPerJob: i.secondsPerEpoch * epochs,
      costPerJob: instancePerEpoch * epochs * peers
    },
    serverless: {
      secondsPerEpoch: s.secondsPerEpoch,
      costPerPeerPerEpoch: serverlessPerEpoch,
      secondsPerJob: s.secondsPerEpoch * epochs,
      costPerJob: serverlessPerEpoch * epochs * peers,
      lambdaCostPerPeerPerEpoch: lambda,
      instanceCostPerPeerPerEpoch: smallInstance,
      requestFeesPerPeerPerEpoch: fees
    },
    costRatio: serverlessPerEpoch / instancePerEpoch,
    speedup: i.secondsPerEpoch / s.secondsPerEpoch,
    cheaper: serverlessPerEpoch < instancePerEpoch ? 'serverless' : 'instance-based'
  }
}

/** Batches one peer computes per epoch: its share of the training set, the last batch partial. */
export function batchesPerEpoch(trainSamples: number, peers: number, batchSize: number): number {
  return Math.ceil(trainSamples / peers / batchSize)
}

/**
 * The paper prints costs cut (not rounded) to 5 decimals: t2.large for 278.4 s is $0.0071771,
 * printed $0.00717. This gives the figure as the paper would print it.
 */
export function truncateLikePaper(usd: number, decimals = 5): number {
  const scale = 10 ** decimals
  // the epsilon keeps 0.03567 (stored as 0.035669999...) from becoming 0.03566
  return Math.floor(usd * scale + 1e-9) / scale
}

/** Lambda gives CPU in proportion to memory: vCPUs for `memoryMb` (1 at 1769 MB, capped). */
export function lambdaVcpus(memoryMb: number, mbPerVcpu: number, maxVcpus: number): number {
  return Math.min(maxVcpus, memoryMb / mbPerVcpu)
}

/**
 * Time of one batch's gradient on a Lambda function, from the same batch measured here: the
 * CPU time the batch took (wall x cores busy) spread over the function's vCPUs, never faster
 * than the wall time measured here (assumes a Lambda vCPU is as fast as a core of this machine).
 */
export function lambdaBatchSeconds(localWallSeconds: number, localCoresBusy: number, vcpus: number): number {
  const busy = Math.max(localCoresBusy, 1e-6)
  return localWallSeconds * Math.max(1, busy / vcpus)
}
