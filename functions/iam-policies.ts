/**
 * The IAM policies the offload needs, least privilege: the gradient function reads and writes
 * the bucket's prefix; the state machine invokes the function; a peer writes/reads/deletes blobs,
 * invokes the function or runs the state machine (and, to create or update the machine at start,
 * manages it and passes its role). `p2pmld functions package` writes them beside the zip.
 */

export interface PolicyOptions {
  readonly bucket: string
  readonly prefix: string
  readonly functionName: string
  readonly stateMachineName: string
  /** default '*': any region/account (narrow it to yours) */
  readonly region?: string
  readonly accountId?: string
}

type Policy = Record<string, unknown>

const trust = (service: string): Policy => ({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { Service: service }, Action: 'sts:AssumeRole' }]
})

export function offloadPolicies(options: PolicyOptions): Record<string, Policy> {
  const region = options.region ?? '*'
  const account = options.accountId ?? '*'
  const objects = `arn:aws:s3:::${options.bucket}/${options.prefix}*`
  const functionArn = `arn:aws:lambda:${region}:${account}:function:${options.functionName}`
  const machineArn = `arn:aws:states:${region}:${account}:stateMachine:${options.stateMachineName}`
  const executions = `arn:aws:states:${region}:${account}:execution:${options.stateMachineName}:*`
  return {
    'lambda-trust-policy.json': trust('lambda.amazonaws.com'),
    'lambda-execution-policy.json': {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'Blobs', Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject'], Resource: objects },
        { Sid: 'Logs', Effect: 'Allow', Action: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'], Resource: '*' }
      ]
    },
    'state-machine-trust-policy.json': trust('states.amazonaws.com'),
    'state-machine-policy.json': {
      Version: '2012-10-17',
      Statement: [{ Sid: 'InvokeGradientFunction', Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: [functionArn, `${functionArn}:*`] }]
    },
    'peer-policy.json': {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'Blobs', Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'], Resource: objects },
        { Sid: 'Invoke', Effect: 'Allow', Action: ['lambda:InvokeFunction', 'lambda:GetFunction'], Resource: functionArn },
        { Sid: 'RunStateMachine', Effect: 'Allow', Action: ['states:StartSyncExecution', 'states:StartExecution', 'states:DescribeExecution', 'states:UpdateStateMachine', 'states:CreateStateMachine'], Resource: [machineArn, executions] },
        { Sid: 'FindStateMachine', Effect: 'Allow', Action: 'states:ListStateMachines', Resource: '*' },
        { Sid: 'PassStateMachineRole', Effect: 'Allow', Action: 'iam:PassRole', Resource: '*', Condition: { StringEquals: { 'iam:PassedToService': 'states.amazonaws.com' } } }
      ]
    },
    'deploy-policy.json': {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'Function', Effect: 'Allow', Action: ['lambda:GetFunction', 'lambda:CreateFunction', 'lambda:UpdateFunctionCode', 'lambda:UpdateFunctionConfiguration'], Resource: functionArn },
        { Sid: 'StateMachine', Effect: 'Allow', Action: ['states:CreateStateMachine', 'states:UpdateStateMachine'], Resource: machineArn },
        { Sid: 'FindStateMachine', Effect: 'Allow', Action: 'states:ListStateMachines', Resource: '*' },
        { Sid: 'PassRoles', Effect: 'Allow', Action: 'iam:PassRole', Resource: '*', Condition: { StringEquals: { 'iam:PassedToService': ['lambda.amazonaws.com', 'states.amazonaws.com'] } } }
      ]
    }
  }
}
