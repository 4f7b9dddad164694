# frozen_string_literal: true

require "securerandom"

# Sidekiq Web as an application mounts it: at /sidekiq, behind a session (its CSRF protection
# keeps its token there), talking to the suite's real Redis, with schema_fence's tab. Sidekiq
# keeps extensions for the whole process, so the tab is registered once; its authorization
# callable answers +steering+, which each example sets.
module SidekiqWebApp
  class << self
    attr_accessor :steering
  end

  module_function

  # schema_fence's tab, registered once.
  def tab
    require "sidekiq"
    require "sidekiq/web"
    require "schema_fence/dashboard/sidekiq_web"
    @tab ||= SchemaFence::Dashboard::SidekiqWeb.register(authorize: ->(_request) { SidekiqWebApp.steering })
  end

  # @return [#call] the Rack app
  def build
    tab
    Sidekiq.configure_client { |c| c.redis = { url: RedisServer.url } }
    session = session_middleware
    Rack::Builder.new do
      use(*session)
      map("/sidekiq") { run Sidekiq::Web }
    end.to_app
  end

  # Rack 2 has its cookie session; Rack 3 moved it into the rack-session gem, which Debian 13
  # does not install: there, sessions kept in this process ({Pool}).
  def session_middleware
    require "rack"
    begin
      require "rack/session"
    rescue LoadError
      begin
        require "rack/session/cookie"
      rescue LoadError
        return [Pool]
      end
    end
    [Rack::Session::Cookie, { secret: SecureRandom.hex(64), same_site: true, max_age: 86_400 }]
  end

  # A session per client in a Hash of this process, found by a random cookie.
  class Pool
    COOKIE = "schema_fence_spec_session"

    def initialize(app)
      @app = app
      @sessions = {}
      @lock = Mutex.new
    end

    def call(env)
      id = Rack::Request.new(env).cookies[COOKIE]
      id = SecureRandom.hex(16) unless id && @lock.synchronize { @sessions.key?(id) }
      env["rack.session"] = @lock.synchronize { @sessions[id] ||= {} }
      status, headers, body = @app.call(env)
      headers = headers.merge("set-cookie" => "#{COOKIE}=#{id}; path=/; HttpOnly; SameSite=Strict")
      [status, headers, body]
    end
  end
end
