# frozen_string_literal: true

$LOAD_PATH.unshift File.expand_path("../lib", __dir__)
require "tmpdir"
require "fileutils"

if ENV["SCHEMA_FENCE_GC_STRESS"]
  # GC.stress marks the whole heap at every allocation, so the native specs run with the native
  # classes alone (no ActiveRecord, no ActiveSupport): a small heap keeps the pass to minutes.
  %w[errors native dictionary topology guard].each { |f| require "schema_fence/#{f}" }
  require_relative "support/gitlab_fixtures"
else
  require "schema_fence/testing"
  Dir[File.join(__dir__, "support", "**", "*.rb")].each { |f| require f }
  # Rails 7.2+: a connection is leased for a block (with_connection) or a unit of work
  # (lease_connection), never checked out for good by ActiveRecord::Base.connection; the suite
  # holds the library to that. Rails 6.1 has no such setting.
  ActiveRecord.permanent_connection_checkout = :disallowed if ActiveRecord.respond_to?(:permanent_connection_checkout=)
end

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
