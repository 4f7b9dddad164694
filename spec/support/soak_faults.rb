# frozen_string_literal: true

# The faults the soak (spec/support/soak.rb) injects at random moments of its seed.
module SoakFaults
  EVENTS = %i[kill_sidekiq restart_source crash_source restart_target crash_target pause_resume].freeze

  private

  def inject_faults
    until @stop
      sleep(@random.rand(2.0..5.0))
      break if @stop

      event = EVENTS[@random.rand(EVENTS.size)]
      @quiet.synchronize { run_fault(event) }
    end
  rescue StandardError => e
    log("faults stopped: #{e.class}: #{e.message}")
    raise
  end

  def run_fault(event)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    case event
    when :kill_sidekiq
      index = @random.rand(2)
      Process.kill(:KILL, @sidekiqs[index])
      Process.wait(@sidekiqs[index])
      start_sidekiq(index)
    when :restart_source then @source.restart
    when :crash_source then crash(@source)
    when :restart_target then @target.restart
    when :crash_target then crash(@target)
    when :pause_resume then pause_resume
    end
    @events << event
    log(format("%-15<event>s %.2<took>fs", event:, took: Process.clock_gettime(Process::CLOCK_MONOTONIC) - started))
  end

  def crash(cluster)
    cluster.kill
    cluster.restart
  end

  def pause_resume
    database = split? && @random.rand(2) == 1 ? "ci" : "main"
    live = SchemaFence::Migrations.on(url_of(database)).reject(&:stale?).select { |m| m.status == :active }
    target = live[@random.rand(live.size)] if live.any?
    return unless target

    SchemaFence::Store._set_status(url_of(database), target.id, "paused")
    sleep 1
    SchemaFence::Store._set_status(url_of(database), target.id, "active")
  rescue PG::Error, SchemaFence::Error => e
    log("pause_resume: #{e.class}: #{e.message}")
  end
end
