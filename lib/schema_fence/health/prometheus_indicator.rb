# frozen_string_literal: true

require "json"
require "net/http"
require "uri"

module SchemaFence
  module Health
    # An indicator read from Prometheus, as GitLab's PatroniApdex: an instant query's first
    # value (the SLI) against an SLO; stop when the SLI is not above it (+alert: :below+: not
    # below it, as for a WAL rate). The query may differ per database: +{ main: "...", ci: "..." }+.
    # An unreachable server or an empty answer is unknown, and does not stop (GitLab's rule).
    class PrometheusIndicator
      attr_reader :name

      def initialize(name, url:, query:, slo:, alert: :above, timeout: 5)
        raise ArgumentError, "prometheus_indicator #{name}: alert must be :above or :below, got #{alert.inspect}" \
          unless %i[above below].include?(alert)

        @name = name
        @url = url.to_s.chomp("/")
        @query = query
        @slo = Float(slo)
        @alert = alert
        @timeout = timeout
      end

      # @return [String, nil] the reason to stop
      def stop_reason(database)
        query = @query.is_a?(Hash) ? (@query[database.to_sym] || @query[database.to_s]) : @query
        return unless query

        sli = fetch_sli(query)
        return if sli.nil? || healthy?(sli)

        "#{name} SLI #{sli} is #{@alert == :above ? 'not above' : 'not below'} its SLO #{@slo}"
      end

      private

      def healthy?(sli)
        @alert == :above ? sli > @slo : sli < @slo
      end

      def fetch_sli(query)
        uri = URI("#{@url}/api/v1/query")
        uri.query = URI.encode_www_form(query:)
        response = Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == "https", open_timeout: @timeout,
                                                       read_timeout: @timeout) { |http| http.get(uri.request_uri) }
        return unless response.is_a?(Net::HTTPSuccess)

        value = JSON.parse(response.body).dig("data", "result", 0, "value", 1)
        value && Float(value)
      rescue StandardError
        nil
      end
    end
  end
end
