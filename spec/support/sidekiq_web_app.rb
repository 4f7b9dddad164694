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

  # Rack 2 has its cookie session; Rack 3 moved it into the rack-session gem.
  def session_middleware
    require "rack"
    begin
      require "rack/session"
    rescue LoadError
      begin
        require "rack/session/cookie"
      rescue LoadError
        Clusters.send(:skip_example, "needs a Rack session for Sidekiq Web (rack 2, or the rack-session gem)")
      end
    end
    [Rack::Session::Cookie, { secret: SecureRandom.hex(64), same_site: true, max_age: 86_400 }]
  end
end
