// The two stand-in packages ship no types; what the stand-ins use of them.
declare module 's3rver' {
  import type { AddressInfo } from 'node:net'
  export default class S3rver {
    constructor(options: { address?: string, port?: number, silent?: boolean, directory: string, configureBuckets?: Array<{ name: string, configs: unknown[] }> })
    run(): Promise<AddressInfo>
    close(): Promise<void>
  }
}

declare module 'asl-validator' {
  export default function aslValidator(definition: unknown, options?: { checkPaths?: boolean, checkArn?: boolean }): {
    isValid: boolean
    errors: unknown[]
    errorsText(separator?: string): string
  }
}
