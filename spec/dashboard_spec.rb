# frozen_string_literal: true

require "net/http"

RSpec.describe SchemaFence::Dashboard, :postgres do
  before { Batches.configure }

  let(:main_url) { Batches.database("dash_main", name: "main", serves: %w[main], rows: 500, on: :main) }
  let(:ci_url) { Batches.database("dash_ci", name: "ci", serves: %w[ci], rows: 300, on: :ci) }

  # main: a migration 40% done; ci: one that failed on the statement guard.
  def prepare
    SchemaFence.configure do |c|
      c.database(:main, url: main_url)
      c.database(:ci, url: ci_url)
    end
    Batches.queue(main_url, "IncrementDone", "projects", :gitlab_main, batch_size: 100)
    main = SchemaFence::Worker.new(database: :main, url: main_url)
    2.times { main.run_once }
    Batches.queue(ci_url, "TouchProjects", "ci_builds", :gitlab_ci, batch_size: 300)
    SchemaFence::Worker.new(database: :ci, url: ci_url).run_once
  end

  after { SchemaFence.configuration.databases.clear }

  def serve(app)
    base, server = HttpServer.start(app)
    yield base
  ensure
    server&.shutdown
  end

  it "shows every database and steers a migration from a real browser when authorized" do
    prepare
    serve(described_class.new(authorize: ->(_request) { true })) do |base|
      Browser.with do |browser|
        browser.navigate.to("#{base}/")
        main_row = browser.find_element(css: "#migration-main_1")
        expect(main_row.text).to include("IncrementDone", "projects.id", "gitlab_main", "active", "40%", "2 done / 0 failed")
        ci_row = browser.find_element(css: "#migration-ci_1")
        expect(ci_row.text).to include("TouchProjects", "0 done / 1 failed", "CrossDatabaseAccessError")
        expect(browser.find_element(css: "#database-main h2").text).to eq("main: identity main serving main, epoch 0")

        main_row.find_element(css: "button[name=pause]").click
        expect(Browser.text_eventually(browser, "#notice", "paused")).to include("main_1", "paused")
        expect(Browser.text_eventually(browser, "#migration-main_1 .status", "paused")).to eq("paused")
        expect(SchemaFence::Migrations.on(main_url).first.status).to eq(:paused)
        # SCHEMA_FENCE_SCREENSHOT=docs/dashboard.png renews the README's picture.
        shot = ENV.fetch("SCHEMA_FENCE_SCREENSHOT", File.join(Dir.tmpdir, "schema_fence-dashboard-#{Process.pid}.png"))
        browser.save_screenshot(shot)
        expect(File.binread(shot, 8)).to eq("\x89PNG\r\n\x1A\n".b)

        browser.find_element(css: "#migration-main_1 button[name=resume]").click
        expect(Browser.text_eventually(browser, "#migration-main_1 .status", "active")).to eq("active")
      end
    end
  end

  it "is read-only by default: no buttons, and a steering request is refused and changes nothing" do
    prepare
    serve(described_class.new) do |base|
      page = Net::HTTP.get(URI("#{base}/"))
      expect(page).to include("main_1", "read-only")
      expect(page).not_to include("<button")
      response = Net::HTTP.post(URI("#{base}/migrations/main_1/pause"), "")
      expect(response.code).to eq("403")
      expect(response.body).to include("read-only")
      expect(SchemaFence::Migrations.on(main_url).first.status).to eq(:active)
    end
  end

  it "refuses a steering request from another origin even when authorized" do
    prepare
    serve(described_class.new(authorize: ->(_request) { true })) do |base|
      uri = URI("#{base}/migrations/main_1/pause")
      response = Net::HTTP.start(uri.host, uri.port) do |http|
        http.post(uri.path, "", "Origin" => "https://evil.example")
      end
      expect(response.code).to eq("403")
      expect(SchemaFence::Migrations.on(main_url).first.status).to eq(:active)
    end
  end

  it "escapes what it shows: a hostile error message is text, not markup" do
    prepare
    PG.connect(ci_url) do |c|
      c.exec("UPDATE batched_background_migration_jobs SET metrics = jsonb_build_object('error', '<script>alert(1)</script>')")
    end
    serve(described_class.new) do |base|
      page = Net::HTTP.get(URI("#{base}/"))
      expect(page).to include("&lt;script&gt;alert(1)&lt;/script&gt;")
      expect(page).not_to include("<script>alert")
    end
  end
end
