# frozen_string_literal: true

module SchemaFence
  # The cutover of a database split (docs/architecture.md, docs/cutover.md): the target (ci, with
  # the databases that fall back to it) moves off the source (main, which keeps every other
  # database it served, e.g. sec) onto a streaming replica. Verify the target, pause and drain the
  # source, fence the moving tables (application writes to them fail with SQLSTATE SF001, safe to
  # retry), let the replica catch up, promote it, stamp both identities with a new epoch, lock
  # writes to what each side no longer serves, resume.
  #
  #   cutover = SchemaFence::Cutover.new(source_url: main_url, target_url: replica_url)
  #   cutover.plan.each { |step| puts "#{step.step}: #{step.action} on #{step.database}" }
  #   cutover.execute { |outcome| puts "#{outcome.step} took #{outcome.duration.round(3)}s" }
  #   cutover.windows   # => #<struct Windows claim_pause=0.91, write=0.42>
  #
  # execute records every step in schema_fence_cutover_log on the source and, run again after an
  # interruption, resumes after the last finished step (a run naming another target is refused).
  # rollback, before the promotion, lifts the fence and the pause.
  class Cutover
    # One step of the plan.
    PlannedStep = Struct.new(:step, :database, :action, :done, keyword_init: true)
    # What running one step did; +skipped+ when an earlier run had finished it.
    StepOutcome = Struct.new(:step, :database, :duration, :detail, :skipped, keyword_init: true)
    # A tracking row its database no longer serves.
    StaleRow = Struct.new(:id, :job_class_name, :table_name, :gitlab_schema, :jobs, keyword_init: true)
    # Seconds without claims on the source (pause to resume), and without writes to the moving
    # tables anywhere (fence to stamp); nil until measured.
    Windows = Struct.new(:claim_pause, :write, keyword_init: true)

    # @param source_url [String] the database that stays (main)
    # @param target_url [String] the streaming replica that becomes the split-out database (ci)
    # @param promote [Boolean] true: pg_promote() on the replica; false: wait for an external
    #   promotion (Patroni)
    # @param drain_timeout [Numeric] seconds to wait for live batch leases to end
    # @param catch_up_timeout [Numeric] seconds to wait for the replica to replay the source's WAL
    # @param promote_timeout [Numeric] seconds to wait for the promotion
    # @param reversible [Boolean] true: at the promotion, replicate the moving tables from the
    #   target back to the source (needs wal_level = logical, replication slots and a key on every
    #   moving table, checked first), so that #rollback after it loses nothing; false: a rollback
    #   after the promotion is refused
    def self.new(source_url:, target_url:, source: "main", target: "ci", promote: true, drain_timeout: 60,
                 catch_up_timeout: 60, promote_timeout: 60, reversible: true, topology: SchemaFence.topology,
                 dictionary: SchemaFence.dictionary)
      _new(topology, dictionary,
           { source_url:, target_url:, source: source.to_s, target: target.to_s, promote: promote ? true : false,
             drain_timeout: Float(drain_timeout), catch_up_timeout: Float(catch_up_timeout),
             promote_timeout: Float(promote_timeout), reversible: reversible ? true : false })
    end

    # Lists the stale rows of the database at +url+, deleting them (with their jobs) when +delete+.
    # @return [Array<StaleRow>]
    def self.cleanup(url, delete: false, topology: SchemaFence.topology)
      _cleanup(url, topology, delete).map do |row|
        StaleRow.new(id: row.id, job_class_name: row.job_class_name, table_name: row.table_name,
                     gitlab_schema: row.gitlab_schema.to_sym, jobs: row.jobs)
      end
    end

    # Removes the write locks of the database at +url+ (undoing a split by hand).
    # @return [Array<String>] the tables unlocked
    def self.unlock_writes(url)
      _unlock_writes(url)
    end

    # Lays the write locks of the database at +url+ again, from what its identity serves now: run
    # it after creating a table (or a partition) of a gitlab_schema that database no longer serves.
    # @return [Array<String>] the tables locked
    def self.lock_writes(url, dictionary: SchemaFence.dictionary, topology: SchemaFence.topology)
      _relock(url, dictionary, topology)
    end

    # One row of a database's cutover log.
    LogEntry = Struct.new(:cutover, :step, :database, :started_at, :finished_at, :detail, keyword_init: true)

    # The latest rows of the cutover log of the database at +url+, newest first.
    # @return [Array<LogEntry>]
    def self.history(url, limit: 20)
      _history(url, Integer(limit)).map do |row|
        LogEntry.new(**LogEntry.members.to_h { |member| [member, row.public_send(member)] })
      end
    end

    # The reverse replications the database at +url+ (a split's source) receives, with the seconds
    # since it last heard from the target.
    # @return [Array<Hash>] +name+, +seconds+
    def self.reverse_replications(url)
      _reverse_subscriptions(url).map { |name, seconds| { name:, seconds: } }
    end

    # @return [Windows] the measured claim pause and write window of this cutover
    def windows
      claim_pause, write = _windows
      Windows.new(claim_pause:, write:)
    end

    # Every step with what it will do where, the tables it fences and locks on each side; changes
    # nothing.
    # @return [Array<PlannedStep>]
    def plan
      _plan.map { |row| PlannedStep.new(step: row.step, database: row.database, action: row.action, done: row.done) }
    end

    # Runs the steps in order, resuming after the last finished one.
    # @yieldparam outcome [StepOutcome] after each step
    # @return [Array<StepOutcome>]
    # @raise [CutoverTargetError] when the target is not a replica of the source (nothing changed)
    # @raise [CutoverTimeoutError] when a bounded wait runs out (the source stays paused and fenced:
    #   run execute again, or rollback)
    def execute
      self.class.steps.map do |name|
        outcome = run_step(name)
        yield outcome if block_given?
        outcome
      end
    end

    # Undoes the cutover. Before the promotion: lifts the fence and the pause (returns []). After
    # it: pauses and drains both sides, fences the moved tables on the target, waits until the
    # source has applied everything the target committed, merges the moved migrations' progress
    # back, moves the sequences past the target's, stamps the source serving what it served before
    # and the target retired, unlocks, drops the reverse replication and resumes; each step logged
    # and resumed by a rerun like #execute.
    # @yieldparam outcome [StepOutcome] after each step
    # @return [Array<StepOutcome>]
    # @raise [CutoverNotReversibleError] after the promotion of a cutover run with reversible: false
    def rollback
      return [] if _rollback_before_promotion

      outcomes = self.class.rollback_steps.map do |name|
        outcome = run_rollback_step(name)
        yield outcome if block_given?
        outcome
      end
      _finish_rollback
      outcomes
    end

    # @return [StepOutcome] one step of the rollback after the promotion
    def run_rollback_step(name)
      outcome_of(_run_rollback_step(name.to_s))
    end

    # @return [Hash, nil] the reverse replication's lag: +bytes+ of the target's WAL the source
    #   has not confirmed and +seconds+ since the source last heard from the target; nil without
    #   reverse replication
    def reverse_lag
      bytes, seconds = _reverse_lag
      bytes && { bytes:, seconds: }
    end

    # @return [StepOutcome]
    def run_step(name)
      outcome = outcome_of(_run_step(name.to_s))
      if defined?(SchemaFence::Instrumentation)
        SchemaFence::Instrumentation.instrument(:cutover_step, step: outcome.step, database: outcome.database,
                                                               duration: outcome.duration, skipped: outcome.skipped)
      end
      outcome
    end

    private

    # @param run [Cutover::StepRun] what the core's step did
    def outcome_of(run)
      StepOutcome.new(step: run.step.to_sym, database: run.database, duration: run.duration, detail: run.detail,
                      skipped: run.skipped)
    end
  end
end
