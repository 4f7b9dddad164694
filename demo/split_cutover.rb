# frozen_string_literal: true

# The cutover of the split scenario (demo/split_scenario.rb), its rollback, and a new replica for
# a second split.
module SplitCutover
  attr_reader :cutover_outcomes, :rollback_outcomes

  def cutover(&)
    @cutover = SchemaFence::Cutover.new(source_url: @source_url, target_url: @target_url,
                                        catch_up_timeout: 30, drain_timeout: 60)
    @cutover_outcomes = @cutover.execute(&)
    repoint_ci if @ci_connection
    @cutover_outcomes
  end

  # Undoes the split after the promotion; ci's connections go back to main.
  def rollback(&)
    @rollback_outcomes = @cutover.rollback(&)
    repoint_ci(@source_url)
    @rollback_outcomes
  end

  # A new streaming replica of the source, for a second split.
  def new_replica
    (@replicas ||= []) << @source.replica
    @replicas.last.url("app")
  end

  # Seconds from the start of the pause to the end of the resume, and from the fence to the end
  # of the stamp (no write to the moving tables anywhere).
  def windows
    @cutover.windows
  end
end
