# frozen_string_literal: true

require "uri"
require_relative "../dashboard"

module SchemaFence
  class Dashboard
    # The dashboard as a tab of Sidekiq Web, inside Sidekiq's own page (its navigation, its CSRF
    # token on every form). Read-only unless +authorize+ allows the request, as the Rack app.
    #
    #   # config/initializers/sidekiq.rb (or wherever Sidekiq::Web is mounted)
    #   require "sidekiq/web"
    #   require "schema_fence/dashboard/sidekiq_web"
    #   SchemaFence::Dashboard::SidekiqWeb.register(authorize: ->(request) { request.env["warden"]&.user&.admin? })
    #
    # Once, at boot: Sidekiq keeps an extension's routes for the life of the process. Sidekiq 7.3
    # takes the tab in +register+'s keywords; Sidekiq 6 has +register(extension)+ and a +tabs+
    # Hash. Both are handled here. The page has no script, and its styles are inline, which
    # Sidekiq 7.3's content security policy allows and Sidekiq 8's does not.
    module SidekiqWeb
      # The tab's path under Sidekiq Web's root, and its label.
      PATH = "schema_fence"
      TAB = "Batched migrations"
      # Rendered by Sidekiq's +erb+, which evaluates a String as ERB: the dashboard's HTML is
      # passed as a value, so nothing it shows is ever evaluated.
      FRAME = "<style><%= schema_fence_styles %></style><%= schema_fence_body %>"

      module_function

      # Adds the tab to +web+ (Sidekiq::Web by default).
      # @param authorize [#call, nil] as {Dashboard#initialize}: nil leaves the tab read-only
      # @return [Dashboard] the dashboard the tab renders
      def register(authorize: nil, configuration: SchemaFence.configuration, web: ::Sidekiq::Web)
        dashboard = Dashboard.new(authorize:, configuration:)
        extension = Module.new
        extension.define_singleton_method(:registered) { |app| SidekiqWeb.routes(app, dashboard) }
        if keyword_register?(web)
          web.register(extension, name: PATH, tab: TAB, index: PATH)
        else
          web.register(extension)
          web.tabs[TAB] = PATH
        end
        dashboard
      end

      # Sidekiq 7.3 and later: +register(extension, name:, tab:, index:, ...)+.
      def keyword_register?(web)
        web.method(:register).parameters.any? { |_type, name| name == :tab }
      end

      # The routes, run by Sidekiq as its own actions (+self+ is Sidekiq's action there).
      def routes(app, dashboard)
        app.get("/#{PATH}") do
          body = dashboard.body(request, base: "#{root_path}#{PATH}", form_fields: csrf_tag)
          erb(FRAME, locals: { schema_fence_styles: dashboard.styles, schema_fence_body: body })
        end
        app.post("/#{PATH}/migrations/:id/:action") do
          SidekiqWeb.steer(dashboard, request, root_path)
        end
      end

      # A steering POST: back to the tab with the notice, or the refusal as text.
      def steer(dashboard, request, root)
        id, action = %r{/#{PATH}/migrations/([^/]+)/([a-z_]+)\z}.match(request.path_info)&.captures
        code, said = dashboard.steer_action(request, id.to_s, action.to_s)
        return [code, { "content-type" => "text/plain; charset=utf-8" }, [said]] unless code == 303

        [303, { "location" => "#{root}#{PATH}?notice=#{URI.encode_www_form_component(said)}" }, []]
      end
    end
  end
end
