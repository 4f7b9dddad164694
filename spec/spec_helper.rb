# frozen_string_literal: true

$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "schema_fence"
require "tmpdir"
require "fileutils"

Dir[File.join(__dir__, "support", "**", "*.rb")].each { |f| require f }

RSpec.configure do |config|
  config.expect_with(:rspec) { |c| c.syntax = :expect }
  config.disable_monkey_patching!
  config.order = :random
  Kernel.srand config.seed
  config.example_status_persistence_file_path = ".rspec_status"

  # bin/test runs the native part again with GC.stress, so a Ruby object the extension holds
  # without marking it is collected at once and the spec fails instead of crashing later.
  if ENV["SCHEMA_FENCE_GC_STRESS"]
    config.around(:each, :native) do |example|
      GC.stress = true
      example.run
    ensure
      GC.stress = false
    end
  end
end
