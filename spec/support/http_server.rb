# frozen_string_literal: true

require "socket"

# A Rack app served over real HTTP on a free port of 127.0.0.1 (WEBrick, in a thread), for the
# metrics exporter and the dashboard; stopped by the caller or at exit.
module HttpServer
  module_function

  # @return [Array(String, #stop)] the base URL and the server
  def start(app)
    require "rack"
    handler

    port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
    server = WEBrick::HTTPServer.new(BindAddress: "127.0.0.1", Port: port, Logger: WEBrick::Log.new(File::NULL),
                                     AccessLog: [])
    server.mount("/", handler, app)
    Thread.new { server.start }
    at_exit { server.shutdown }
    ["http://127.0.0.1:#{port}", server]
  end

  # Rack 2 (Debian 12) has the WEBrick handler; Rack 3 (Debian 13) moved it into rackup.
  def handler
    require "webrick"
    begin
      require "rack/handler/webrick"
      Rack::Handler::WEBrick
    rescue LoadError
      begin
        require "rackup/handler/webrick"
        Rackup::Handler::WEBrick
      rescue LoadError
        Clusters.send(:skip_example, "needs Rack's WEBrick handler (rack 2, or rackup with rack 3)")
      end
    end
  end
end
