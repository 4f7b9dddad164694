# frozen_string_literal: true

require "socket"

# A Rack app served over real HTTP on a free port of 127.0.0.1 (WEBrick, in a thread), for the
# metrics exporter and the dashboard; stopped by the caller or at exit.
module HttpServer
  module_function

  # @return [Array(String, #stop)] the base URL and the server
  def start(app)
    require "rack"
    require "rack/handler/webrick"
    port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
    server = WEBrick::HTTPServer.new(BindAddress: "127.0.0.1", Port: port, Logger: WEBrick::Log.new(File::NULL),
                                     AccessLog: [])
    server.mount("/", Rack::Handler::WEBrick, app)
    Thread.new { server.start }
    at_exit { server.shutdown }
    ["http://127.0.0.1:#{port}", server]
  end
end
