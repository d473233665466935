/**
 * `/p2pmld/job/1.0.0`: how a peer learns the running job and asks to become a member.
 * A new peer asks any peer it reached (its bootstrap peer) for `info`, then sends `join` to the
 * coordinator named there; a peer that stops cleanly sends `leave` to the coordinator. At the end
 * of a job members ask each other for their parameter `digest` to agree on the final state.
 * Job-wide `control` (pause / resume): any member asks the coordinator, which decides the step it
 * takes effect at and announces the decision on the membership topic, as for membership changes.
 */
import { z } from 'zod'

export const JOB_PROTOCOL = '/p2pmld/job/1.0.0'
/**
 * how a coordinator's refusal of a join begins when the job had not started within the wait for
 * the reply: the joiner asks again at once (it is not a failure)
 */
export const JOB_NOT_STARTED = 'the job has not started yet'
/** what a peer that runs no job answers a job request with (a daemon started idle, before `job submit`) */
export const NO_JOB_HERE = 'this peer runs no job'
/** in a coordinator's refusal of a join to a job that finished (the joiner waits for the next job, as for NO_JOB_HERE) */
export const NOTHING_TO_JOIN = 'nothing to join'
/**
 * How a member that is not the coordinator refuses a join, followed by the peer id of the one it
 * counts as coordinator: a joiner named there is counted under its previous process (job-joiner.ts)
 */
export const NOT_THE_COORDINATOR = 'not the coordinator: send the join request to'

export const MembershipRecordSchema = z.object({
  peerId: z.string().min(1).max(128),
  joinStep: z.number().int().min(0),
  leaveStep: z.number().int().min(0).nullable(),
  /** times the member was admitted again after it left or was evicted, and the step it left at then */
  readmissions: z.number().int().min(1).optional(),
  previousLeaveStep: z.number().int().min(0).optional()
}).strict()

export const MembershipStateSchema = z.object({
  /** bumped by the coordinator on every change; a peer adopts a higher version wholesale */
  version: z.number().int().min(0),
  members: z.array(MembershipRecordSchema).max(4096)
}).strict()
export type MembershipState = z.infer<typeof MembershipStateSchema>

export const JobControlActionSchema = z.enum(['pause', 'resume'])
export type JobControlAction = z.infer<typeof JobControlActionSchema>

/**
 * The coordinator's decision on pausing the job: `seq` grows with every decision (a peer adopts
 * a higher one); a pause holds every member before step `step` until a later resume.
 */
export const ControlDecisionSchema = z.object({
  seq: z.number().int().min(1),
  action: JobControlActionSchema,
  step: z.number().int().min(0)
}).strict()
export type ControlDecision = z.infer<typeof ControlDecisionSchema>

export const JobRequestSchema = z.discriminatedUnion('type', [
  z.object({ v: z.literal(1), type: z.literal('info') }).strict(),
  z.object({ v: z.literal(1), type: z.literal('join'), jobId: z.string().min(1).max(64), addrs: z.array(z.string().max(512)).max(32) }).strict(),
  z.object({ v: z.literal(1), type: z.literal('leave'), jobId: z.string().min(1).max(64), effectiveStep: z.number().int().min(0) }).strict(),
  /** the parameter digest at the start of `step` (answered once the peer gets there) */
  z.object({ v: z.literal(1), type: z.literal('digest'), jobId: z.string().min(1).max(64), step: z.number().int().min(0) }).strict(),
  /** to the coordinator: pause or resume the whole job; the reply is the decision (ControlDecisionSchema) */
  z.object({ v: z.literal(1), type: z.literal('control'), jobId: z.string().min(1).max(64), action: JobControlActionSchema }).strict()
])
export type JobRequest = z.infer<typeof JobRequestSchema>

export const JobPhaseSchema = z.enum(['waiting', 'training', 'finished'])
export type JobPhase = z.infer<typeof JobPhaseSchema>

export const JobInfoSchema = z.object({
  jobId: z.string(),
  /** the job config as JSON; the receiver validates it with JobConfigSchema */
  config: z.unknown(),
  phase: JobPhaseSchema,
  step: z.number().int().min(0),
  coordinator: z.object({ peerId: z.string(), addrs: z.array(z.string()) }).strict(),
  membership: MembershipStateSchema,
  /**
   * the model the job trains, as the answering member loaded it: its parameter count and layout
   * fingerprint (training-state.ts layoutFingerprint). A joiner whose own copy differs does not
   * ask for admission: admitted, it could not take the state, and the members would wait on it
   */
  model: z.object({ parameters: z.number().int().min(0), layout: z.string().max(64) }).strict().optional()
}).strict()
export type JobInfo = z.infer<typeof JobInfoSchema>

/** where members listen, so a peer can reach members it was never introduced to */
export const AddressBookSchema = z.record(z.string().max(128), z.array(z.string().max(512)).max(32))
export type AddressBook = z.infer<typeof AddressBookSchema>

export const JoinReplySchema = z.object({
  /** first step the new member contributes to; its state is fetched as of that step */
  effectiveStep: z.number().int().min(0),
  membership: MembershipStateSchema,
  addresses: AddressBookSchema.optional(),
  /**
   * the member to fetch the state from (absent: the coordinator): the coordinator spreads a
   * crowd of joiners over the members that hold the state, so no one member serves them all
   */
  donor: z.string().min(1).max(128).optional(),
  /**
   * the members that hold the state at the joiner's first step, `donor` first: the joiner takes
   * one range of the state from each (state-sync fetch-from-donors.ts); absent: `donor` only
   */
  donors: z.array(z.string().min(1).max(128)).min(1).max(64).optional(),
  /**
   * ms: the coordinator's step deadline when it admitted the joiner, the joiner's deadline until it
   * has timed steps of its own (JobRunnerOptions.warmupDeadlineMs); absent: the 30 s warm-up, or a
   * job whose deadline is fixed (stepDeadlineMs). Derived deadlines stay within 2-120 s; the joiner
   * clamps it there too. (Added after v1's first replies: a joiner whose schema lacks it refuses
   * the reply, so members of one job run the same release.)
   */
  deadlineMs: z.number().int().min(1).max(600_000).optional(),
  /**
   * the coordinator's latest pause/resume decision: a joiner of a paused job, admitted at the
   * paused step, pauses before its first step instead of running it (it then waited in it, its
   * status 'paused' yet short of gradients). Absent: no decision yet. (Added after deadlineMs, as
   * it was: a joiner of an earlier release refuses a reply that holds it, so members of one job
   * run the same release.)
   */
  control: ControlDecisionSchema.optional()
}).strict()
export type JoinReply = z.infer<typeof JoinReplySchema>

export const LeaveReplySchema = z.object({ membership: MembershipStateSchema }).strict()

export const DigestReplySchema = z.object({
  /** the step whose starting parameters were hashed: the asked step, or later if the peer went on */
  step: z.number().int().min(0),
  /** sha256 of the parameters, hex */
  digest: z.string().regex(/^[0-9a-f]{64}$/)
}).strict()

/** Gossiped on the job's membership topic. */
export const MembershipAnnouncementSchema = z.discriminatedUnion('type', [
  z.object({
    v: z.literal(1),
    type: z.literal('membership'),
    jobId: z.string().min(1).max(64),
    /** the coordinator's current step */
    step: z.number().int().min(0),
    phase: JobPhaseSchema,
    membership: MembershipStateSchema,
    addresses: AddressBookSchema.optional()
  }).strict(),
  z.object({
    v: z.literal(1),
    type: z.literal('heartbeat'),
    jobId: z.string().min(1).max(64),
    step: z.number().int().min(0),
    addrs: z.array(z.string().max(512)).max(32)
  }).strict(),
  z.object({
    v: z.literal(1),
    type: z.literal('leave'),
    jobId: z.string().min(1).max(64),
    effectiveStep: z.number().int().min(0)
  }).strict(),
  /** the coordinator's latest pause/resume decision (repeated, so a member that missed it catches up) */
  z.object({
    v: z.literal(1),
    type: z.literal('control'),
    jobId: z.string().min(1).max(64),
    decision: ControlDecisionSchema
  }).strict()
])
export type MembershipAnnouncement = z.infer<typeof MembershipAnnouncementSchema>
