# frozen_string_literal: true

require "erb"
require "json"
require "uri"

module SchemaFence
  # A web page of every configured database: its identity, its migrations (progress, rate, time
  # left, failures with their last error), its cutover log and the reverse replication it
  # receives. Read-only unless +authorize+ allows a request; then each migration has pause,
  # resume and retry buttons (POSTs, refused from another origin).
  #
  #   # config/routes.rb
  #   mount SchemaFence::Dashboard.new(authorize: ->(request) { request.env["warden"]&.user&.admin? }),
  #         at: "/admin/schema_fence"
  #
  #   # config.ru, outside Rails
  #   map("/schema_fence") { run SchemaFence::Dashboard.new }
  #
  # GET /status.json gives the same data as `rake schema_fence:status FORMAT=json`. As a tab of
  # Sidekiq Web: {Dashboard::SidekiqWeb.register}.
  class Dashboard
    ACTIONS = %w[pause resume retry_failed].freeze
    TEMPLATE = File.expand_path("dashboard/page.html.erb", __dir__)
    BODY = File.expand_path("dashboard/body.html.erb", __dir__)
    STYLES = File.expand_path("dashboard/styles.css", __dir__)
    HISTORY = 10

    # @param authorize [#call, nil] called with the Rack::Request of a steering action; truthy
    #   allows it. nil (the default): read-only, no buttons, every POST refused.
    # @param configuration [Configuration]
    def initialize(authorize: nil, configuration: SchemaFence.configuration)
      require "rack"
      @authorize = authorize
      @configuration = configuration
      @template = ERB.new(File.read(TEMPLATE), trim_mode: "-")
      @body = ERB.new(File.read(BODY), trim_mode: "-")
      @styles = File.read(STYLES)
    end

    # The page's content without its document around it, for a host page (Sidekiq Web's tab).
    # @param base [String] the path the steering forms post under
    # @param form_fields [String] trusted HTML each form carries (the host's CSRF token)
    # @return [String] HTML
    def body(request, base:, form_fields: "")
      status = Status.collect(@configuration)
      @body.result_with_hash(status:, history: history(status), steering: steering?(request), base:,
                             notice: request.params["notice"], helpers: Helpers, form_fields:)
    end

    # @return [String] the CSS of {#body}, scoped to it
    attr_reader :styles

    # Runs a steering action when the request may.
    # @return [Array(Integer, String)] 303 and the notice to show, or the refusal's code and text
    def steer_action(request, id, action)
      return [404, "unknown action #{action}; the actions are #{ACTIONS.join(', ')}"] unless ACTIONS.include?(action)
      return [403, "refused: the request comes from another origin"] unless same_origin?(request)
      return [403, "steering is not authorized: the dashboard is read-only"] unless steering?(request)

      notice = begin
        Operations.public_send(action, id, status: Status.collect(@configuration))
      rescue Error => e
        e.message
      end
      [303, notice]
    end

    def call(env)
      request = Rack::Request.new(env)
      path = request.path_info.to_s.sub(%r{/+\z}, "")
      return page(request) if request.get? && path.empty?
      return json if request.get? && path == "/status.json"

      if request.post? && (match = %r{\A/migrations/([^/]+)/([a-z_]+)\z}.match(path))
        return steer(request, match[1], match[2])
      end

      text(404, "not found: #{request.request_method} #{path}")
    end

    private

    def page(request)
      html = @template.result_with_hash(styles:, body: body(request, base: request.script_name.to_s))
      [200, { "content-type" => "text/html; charset=utf-8", "cache-control" => "no-store" }, [html]]
    end

    def json
      [200, { "content-type" => "application/json" }, [Status.collect(@configuration).to_json]]
    end

    def steer(request, id, action)
      code, said = steer_action(request, id, action)
      return text(code, said) unless code == 303

      [303, { "location" => "#{request.script_name}/?notice=#{URI.encode_www_form_component(said)}" }, []]
    end

    def steering?(request)
      return false unless @authorize

      @authorize.call(request) ? true : false
    end

    # A browser sends Origin with a cross-site POST; a form of this page sends this host's.
    def same_origin?(request)
      origin = request.get_header("HTTP_ORIGIN")
      origin.nil? || origin == "null" || origin == request.base_url
    end

    def history(status)
      owners(status).to_h { |db| [db.name, safely { Cutover.history(db.url, limit: HISTORY) }] }
    end

    def owners(status)
      status.databases.select { |db| db.state == :owner }
    end

    def safely
      yield
    rescue Error
      []
    end

    def text(code, body)
      [code, { "content-type" => "text/plain; charset=utf-8" }, [body]]
    end

    # What the page's template calls.
    module Helpers
      module_function

      def h(value)
        ERB::Util.html_escape(value.to_s)
      end

      def percent(fraction)
        "#{(fraction.to_f.clamp(0.0, 1.0) * 100).floor}%"
      end

      def actions(entry)
        return [] if entry.stale?

        list = []
        list << "pause" if entry.status == :active
        list << "resume" if entry.status == :paused
        list << "retry_failed" if entry.status == :failed || entry.batches_failed.to_i.positive?
        list
      end

      def title(db)
        Status::TextRenderer.title(db)
      end

      def rate(entry)
        Status::TextRenderer.rate(entry.rate)
      end

      def time_left(entry)
        Status::TextRenderer.duration(entry.eta)
      end
    end
  end
end
