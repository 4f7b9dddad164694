# frozen_string_literal: true

# Test tooling, not part of what a production process loads: throwaway PostgreSQL clusters and
# streaming replicas (SchemaFence::Cluster) for the RSpec suite, the benches and bin/demo.
#
#   require "schema_fence/testing"
#   cluster = SchemaFence::Cluster.start
#
# It loads a native library of its own (the testkit crate's), built by `rake compile` beside the
# gem's, and never shipped in the .gem.

require_relative "../schema_fence"

module SchemaFence
  # A throwaway PostgreSQL cluster (SchemaFence::Cluster) could not be made, started, stopped or
  # used; the message names the step, the command and the tail of the server log.
  class ClusterError < Error; end
end

begin
  require_relative "schema_fence_testkit.so"
rescue LoadError => e
  raise LoadError, "schema_fence/testing: the testkit's native library is not built (#{e.message}); " \
                   "run `rake compile` in the repository"
end

require_relative "testing/cluster"
