/**
 * The AWS SDK v3 clients p2pmld uses, created one way everywhere. Region, credentials and
 * endpoints come from the SDK's default chain (AWS_REGION, AWS_PROFILE, the instance role, ...,
 * AWS_ENDPOINT_URL_LAMBDA / _SFN / _S3), so tests point this unchanged code at local stand-ins.
 * The only endpoint-dependent setting: with a custom Step Functions endpoint the `sync-` host
 * prefix of StartSyncExecution is turned off (a local server has no such host name).
 */
import { LambdaClient } from '@aws-sdk/client-lambda'
import { SFNClient } from '@aws-sdk/client-sfn'

export interface AwsClientOptions {
  /** AWS region (default: the SDK's) */
  readonly region?: string
}

function customEndpoint(service: 'SFN' | 'LAMBDA'): boolean {
  return (process.env[`AWS_ENDPOINT_URL_${service}`] ?? process.env.AWS_ENDPOINT_URL) !== undefined
}

export function createLambdaClient(options: AwsClientOptions = {}): LambdaClient {
  // the SDK's own retries are for throttling and network errors; a function error is retried by the dispatcher
  return new LambdaClient({ ...(options.region !== undefined ? { region: options.region } : {}) })
}

export function createSfnClient(options: AwsClientOptions = {}): SFNClient {
  return new SFNClient({ ...(options.region !== undefined ? { region: options.region } : {}), disableHostPrefix: customEndpoint('SFN') })
}
