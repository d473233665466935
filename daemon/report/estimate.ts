/**
 * Turns measured step times into the paper's cost comparison (cost-model.ts): where the times
 * come from (a run report, a calibration run, or figures the user gives), how an epoch's
 * gradient time on an instance and with Lambda offload follows from them, and the prices.
 */
import { ec2PricePerSecond, lambdaPricePerSecond, type PriceTable } from '../../config/prices.js'
import { batchesPerEpoch, compareCosts, lambdaBatchSeconds, lambdaVcpus, type CostComparison, type CostModelInputs } from './cost-model.js'
import { formatSeconds } from './format-seconds.js'

/** One batch's gradient as measured (a report's or a calibration's 'compute' stage). */
export interface MeasuredCompute {
  /** 'report FILE' or 'calibration on this machine' */
  readonly source: string
  readonly batchSize: number
  /** median wall time of one batch's gradient, ms */
  readonly medianMs: number
  /** process CPU / wall during it, percent (200 = two cores); null: not measured (a batch under 20 ms, StageFigure.cpuPercent) */
  readonly cpuPercent: number | null
  /** resident memory, MiB (the Lambda memory default) */
  readonly rssMiB: number
  /** whose memory rssMiB is, for the printout (e.g. a run report's: the whole daemon's, libp2p included) */
  readonly rssOf?: string
}

export interface EstimateRequest {
  readonly model: string
  readonly batchSize: number
  readonly peers: number
  readonly epochs: number
  readonly trainSamples: number
  readonly instanceType: string
  readonly offloadInstanceType: string
  /** absent: the measured memory rounded up to 64 MB (at least 128 MB) */
  readonly lambdaMemoryMb?: number
  readonly prices: PriceTable
  /** absent only when both times below are given */
  readonly measured?: MeasuredCompute
  /** seconds per epoch per peer, overriding what follows from `measured` */
  readonly instanceSecondsPerEpoch?: number
  readonly offloadSecondsPerEpoch?: number
}

export interface Estimate {
  readonly request: Omit<EstimateRequest, 'prices'>
  readonly inputs: CostModelInputs
  readonly comparison: CostComparison
  readonly lambdaVcpus: number
  /** how each time was obtained, for the printout */
  readonly notes: string[]
}

export class EstimateInputError extends Error {
  override name = 'EstimateInputError'
}

function checkLambdaMemory(memoryMb: number, prices: PriceTable): void {
  if (memoryMb < 128 || memoryMb > prices.lambda.maxMemoryMb) throw new EstimateInputError(`--lambda-memory ${memoryMb} is outside Lambda's 128-${prices.lambda.maxMemoryMb} MB`)
}

/**
 * The checks of a request that need no step time (the instance types' prices, a Lambda memory
 * size given), so `p2pmld estimate` refuses a typo before a calibration that can take many seconds
 * (vgg11: 14 s, then 'no price for instance type').
 * @throws ConfigError for an instance type without a price; EstimateInputError for a memory size outside Lambda's range
 */
export function checkEstimateRequest(request: Pick<EstimateRequest, 'instanceType' | 'offloadInstanceType' | 'lambdaMemoryMb' | 'prices'>): void {
  ec2PricePerSecond(request.prices, request.instanceType)
  ec2PricePerSecond(request.prices, request.offloadInstanceType)
  if (request.lambdaMemoryMb !== undefined) checkLambdaMemory(request.lambdaMemoryMb, request.prices)
}

export function estimateCosts(request: EstimateRequest): Estimate {
  const { prices, measured } = request
  const batches = batchesPerEpoch(request.trainSamples, request.peers, request.batchSize)
  if (batches < 1) throw new EstimateInputError(`no batches: ${request.trainSamples} training samples over ${request.peers} peers`)
  const notes: string[] = []
  const memory = request.lambdaMemoryMb ?? defaultLambdaMemory(measured, prices.lambda.maxMemoryMb)
  checkLambdaMemory(memory, prices)
  if (request.lambdaMemoryMb === undefined) {
    // with no measurement (step times given as flags) the default is 1,769 MB: one full vCPU
    notes.push(measured === undefined
      ? `Lambda memory ${memory} MB: one full vCPU, no memory measured (--lambda-memory sets it)`
      : `Lambda memory ${memory} MB: the ${measured.rssMiB.toFixed(0)} MiB measured${measured.rssOf === undefined ? '' : ` (${measured.rssOf})`}, rounded up (--lambda-memory sets it)`)
  }
  const vcpus = lambdaVcpus(memory, prices.lambda.mbPerVcpu, prices.lambda.maxVcpus)

  let batchMs: number | undefined
  if (measured !== undefined) {
    // gradient time grows with the batch: scale a measurement at another batch size linearly
    batchMs = measured.medianMs * request.batchSize / measured.batchSize
    notes.push(`one batch of ${request.batchSize}: ${batchMs.toFixed(1)} ms (median) ${measured.cpuPercent === null ? 'with its CPU time not measured (too short a batch: one core busy assumed)' : `at ${measured.cpuPercent.toFixed(0)} % CPU`} (${measured.source}${measured.batchSize === request.batchSize ? '' : `, measured at batch ${measured.batchSize} and scaled linearly`})`)
  }
  const needMeasure = (what: string): never => {
    throw new EstimateInputError(`no measured step time for ${what}: give --from-report FILE, let the calibration run, or pass --${what}-time SECONDS`)
  }

  let instanceSeconds = request.instanceSecondsPerEpoch
  if (instanceSeconds === undefined) {
    if (batchMs === undefined) needMeasure('instance')
    instanceSeconds = (batchMs as number) / 1000 * batches
    notes.push(`instance-based epoch: ${batches} batches one after another at this machine's speed (${formatSeconds(instanceSeconds)})`)
  } else notes.push(`instance-based epoch: ${instanceSeconds} s as given`)

  let offloadSeconds = request.offloadSecondsPerEpoch
  if (offloadSeconds === undefined) {
    if (batchMs === undefined || measured === undefined) needMeasure('offload')
    // a batch too short for its CPU time to be measured: one core busy
    const perBatch = lambdaBatchSeconds((batchMs as number) / 1000, ((measured as MeasuredCompute).cpuPercent ?? 100) / 100, vcpus)
    const waves = Math.ceil(batches / prices.lambda.concurrency)
    offloadSeconds = perBatch * waves
    notes.push(`serverless epoch: ${batches} batches in parallel on Lambda (${vcpus.toFixed(2)} vCPU each${waves > 1 ? `, ${waves} waves of ${prices.lambda.concurrency}` : ''}), ${formatSeconds(perBatch)} per batch`)
  } else notes.push(`serverless epoch: ${offloadSeconds} s as given`)

  const requestFeesPerBatch = prices.lambda.perRequest +
    prices.stepFunctions.transitionsPerBatch * prices.stepFunctions.perStateTransition +
    prices.s3.putsPerBatch * prices.s3.perPutRequest + prices.s3.getsPerBatch * prices.s3.perGetRequest

  const inputs: CostModelInputs = {
    batchesPerEpoch: batches,
    epochs: request.epochs,
    peers: request.peers,
    instanceBased: { instanceType: request.instanceType, pricePerSecond: ec2PricePerSecond(prices, request.instanceType), secondsPerEpoch: instanceSeconds },
    serverless: {
      instanceType: request.offloadInstanceType,
      instancePricePerSecond: ec2PricePerSecond(prices, request.offloadInstanceType),
      lambdaMemoryMb: memory,
      lambdaPricePerSecond: lambdaPricePerSecond(prices, memory),
      secondsPerEpoch: offloadSeconds,
      requestFeesPerBatch
    }
  }
  const { prices: _prices, ...rest } = request
  return { request: { ...rest, lambdaMemoryMb: memory }, inputs, comparison: compareCosts(inputs), lambdaVcpus: vcpus, notes }
}

function defaultLambdaMemory(measured: MeasuredCompute | undefined, max: number): number {
  if (measured === undefined) return Math.min(max, 1769)
  return Math.min(max, Math.max(128, Math.ceil(measured.rssMiB / 64) * 64))
}
