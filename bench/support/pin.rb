# frozen_string_literal: true

module SchemaFence
  module Bench
    # Pins the bench process, and the cluster it starts afterwards (its processes inherit the
    # mask), to one CPU. This VM's vCPUs halt when idle (no guest halt polling): a round trip
    # between a client on one vCPU and a server process on the other pays two wake-ups, and
    # `SELECT 1` takes 11 us or 75 us depending on where the scheduler put the two processes.
    # On one CPU a round trip is a context switch whatever the scheduler does. For benches whose
    # two sides wait on each other (a client and its server), not for concurrent workers.
    # BENCH_PIN=0 leaves the process where it is.
    module Pin
      module_function

      # @return [String] what was done, for the bench's first line
      def one_cpu
        return "not pinned (BENCH_PIN=0)" if ENV["BENCH_PIN"] == "0"

        system("taskset", "-a", "-cp", "0", Process.pid.to_s, out: File::NULL, exception: true)
        "pinned to CPU 0 with its cluster"
      end
    end
  end
end
