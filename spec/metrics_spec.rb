# frozen_string_literal: true

require "net/http"
require "tmpdir"

RSpec.describe SchemaFence::Metrics, :postgres do
  before do
    begin
      require "prometheus/client"
    rescue LoadError
      skip "needs prometheus-client-mmap (Debian's ruby-prometheus-client-mmap; Debian 13 has no package)"
    end
    Batches.configure
    require "prometheus/client/rack/exporter"
    @dir = Dir.mktmpdir("schema_fence-metrics")
    Prometheus::Client.configure { |c| c.multiprocess_files_dir = @dir }
    described_class.attach!(registry: Prometheus::Client::Registry.new)
  end

  after do
    described_class.detach!
    FileUtils.rm_rf(@dir) if @dir # nil when the example was skipped
  end

  def scrape
    exporter = Prometheus::Client::Rack::Exporter.new(->(_env) { [404, {}, []] })
    base, server = HttpServer.start(exporter)
    Net::HTTP.get(URI("#{base}/metrics"))
  ensure
    server&.shutdown
  end

  it "exposes GitLab's batched migration metrics over HTTP, scraped by Prometheus's text format" do
    url = Batches.database("metrics", name: "ci", serves: %w[ci], rows: 300)
    SchemaFence.sql_job("SqlIncrementCiBuilds", "UPDATE ci_builds SET done = done + 1 WHERE id BETWEEN $1 AND $2")
    sql = Batches.queue(url, "SqlIncrementCiBuilds", "ci_builds", :gitlab_ci, batch_size: 100, sub_batch_size: 50)
    Batches.drain(SchemaFence::Worker.new(database: :ci, url:))
    guarded = Batches.queue(url, "TouchProjects", "ci_builds", :gitlab_ci, batch_size: 300)
    SchemaFence::Worker.new(database: :ci, url:).run_once
    # One registry per process (the mmap files' folder is fixed once read): holds are counted here too.
    SchemaFence.configuration.health_indicator(:deploys) { |database:| "a deploy runs on #{database}" }
    SchemaFence::Worker.new(database: :ci, url:).run_once

    body = scrape
    labels = %(database="ci",migration_id="#{sql}",migration_identifier="SqlIncrementCiBuilds/ci_builds.id")
    expect(body).to include("batched_migration_job_updated_tuples_total{#{labels}} 300")
    expect(body).to match(/^batched_migration_job_batch_size\{#{Regexp.escape(labels)},pid="\d+"\} 100$/)
    expect(body).to match(/^batched_migration_job_sub_batch_size\{#{Regexp.escape(labels)},pid="\d+"\} 50$/)
    expect(body).to include("batched_migration_job_query_duration_seconds_count{#{labels}} 3")
    expect(body).to include('schema_fence_batches_total{database="ci",result="succeeded"} 3')
    expect(body).to include('schema_fence_batches_total{database="ci",result="failed"} 1')
    expect(body).to include('schema_fence_guard_violations_total{database="ci"} 1')
    expect(body).not_to include(%(migration_id="#{guarded}",migration_identifier))
    expect(body).to include('schema_fence_migration_holds_total{database="ci",indicator="deploys"} 1')
  ensure
    SchemaFence.configuration.health_indicators.clear
  end
end
