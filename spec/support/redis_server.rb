# frozen_string_literal: true

require "socket"
require "tmpdir"

# A throwaway Redis on a free port of 127.0.0.1, for the Sidekiq specs; stopped at exit.
module RedisServer
  class << self
    def url
      @url ||= start
    end

    private

    def start
      port = free_port
      dir = Dir.mktmpdir("schema_fence-redis")
      @pid = spawn("redis-server", "--port", port.to_s, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", dir, out: File::NULL, err: File::NULL)
      at_exit { stop(dir) }
      wait_until_up(port)
      "redis://127.0.0.1:#{port}/0"
    end

    def stop(dir)
      return unless @pid

      Process.kill(:TERM, @pid)
      Process.wait(@pid)
      FileUtils.rm_rf(dir)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end

    def free_port
      server = TCPServer.new("127.0.0.1", 0)
      server.addr[1]
    ensure
      server&.close
    end

    def wait_until_up(port)
      100.times do
        Socket.tcp("127.0.0.1", port, connect_timeout: 0.2).close
        return
      rescue SystemCallError
        sleep 0.05
      end
      raise "redis-server did not start on port #{port}"
    end
  end
end
