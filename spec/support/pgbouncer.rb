# frozen_string_literal: true

require "fileutils"
require "socket"
require "tmpdir"
require "uri"

# Debian's PgBouncer, started by the suite in transaction pooling in front of a cluster
# (docs/architecture.md section 13). PgBouncer refuses to run as root: as root it runs as the postgres user.
class PgBouncer
  attr_reader :port, :dir

  # @param server_port [Integer] the PostgreSQL server's port on 127.0.0.1
  # @param pool_size [Integer] server connections per database and user
  def self.start(server_port, pool_size:)
    new(server_port, pool_size).tap(&:start)
  end

  def initialize(server_port, pool_size)
    @server_port = server_port
    @pool_size = pool_size
    @dir = Dir.mktmpdir("schema_fence-pgbouncer-")
    File.chmod(0o777, @dir)
    @port = free_port
  end

  def start
    ini = File.join(@dir, "pgbouncer.ini")
    File.write(File.join(@dir, "userlist.txt"), %("postgres" ""\n))
    File.write(ini, config)
    command = ["pgbouncer", ini]
    command = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command] if Process.uid.zero?
    @pid = Process.spawn(*command, out: File::NULL, err: File.join(@dir, "stderr.log"))
    wait_until_listening
  end

  # The URL of +database+ through PgBouncer, for +url+'s user.
  # @param url [String] a URL of the database on the server behind it
  def url_for(url, query: nil)
    uri = URI.parse(url)
    uri.host = "127.0.0.1"
    uri.port = @port
    uri.query = query
    uri.to_s
  end

  def stop
    return unless @pid

    # PgBouncer 1.18 (Debian 12) stops at once on TERM; from 1.23 (Debian 13's 1.24) TERM waits
    # for every client to leave, so after a moment it is killed.
    Process.kill("TERM", @pid)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 5
    until Process.wait(@pid, Process::WNOHANG)
      Process.kill("KILL", @pid) if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.05
    end
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  ensure
    @pid = nil
    FileUtils.rm_rf(@dir)
  end

  private

  def config
    <<~INI
      [databases]
      * = host=127.0.0.1 port=#{@server_port}

      [pgbouncer]
      listen_addr = 127.0.0.1
      listen_port = #{@port}
      unix_socket_dir =
      auth_type = trust
      auth_file = #{@dir}/userlist.txt
      pool_mode = transaction
      default_pool_size = #{@pool_size}
      max_client_conn = 200
      server_reset_query =
      logfile = #{@dir}/pgbouncer.log
      pidfile = #{@dir}/pgbouncer.pid
    INI
  end

  def free_port
    server = TCPServer.new("127.0.0.1", 0)
    server.addr[1]
  ensure
    server&.close
  end

  def wait_until_listening
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    begin
      TCPSocket.new("127.0.0.1", @port).close
    rescue SystemCallError
      raise "pgbouncer did not start: #{File.read(File.join(@dir, 'stderr.log'))}" if
        Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
      retry
    end
  end
end
