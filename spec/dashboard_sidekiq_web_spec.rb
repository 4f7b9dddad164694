# frozen_string_literal: true

require "net/http"
require "schema_fence/dashboard/sidekiq_web"

RSpec.describe SchemaFence::Dashboard::SidekiqWeb, :postgres do
  before { Batches.configure }
  after { SchemaFence.configuration.databases.clear }

  let(:main_url) { Batches.database("sqweb_main", name: "main", serves: %w[main], rows: 500, on: :main) }

  # main: a migration 40% done.
  def prepare
    SchemaFence.configure { |c| c.database(:main, url: main_url) }
    Batches.queue(main_url, "IncrementDone", "projects", :gitlab_main, batch_size: 100)
    main = SchemaFence::Worker.new(database: :main, url: main_url)
    2.times { main.run_once }
  end

  def sidekiq_web
    base, server = HttpServer.start(SidekiqWebApp.build)
    yield "#{base}/sidekiq"
  ensure
    server&.shutdown
    SidekiqWebApp.steering = false
  end

  def status_of(url)
    SchemaFence::Migrations.on(url).first.status
  end

  it "registers its tab through the API of the Sidekiq it runs with (6.4: register and tabs; 7.3: register's keywords)" do
    SidekiqWebApp.tab
    expect(Sidekiq::Web.tabs).to include("Batched migrations" => "schema_fence")
  end

  it "is a tab of Sidekiq Web, shown inside Sidekiq's page, and steers from a real browser when authorized" do
    prepare
    SidekiqWebApp.steering = true
    sidekiq_web do |base|
      Browser.with do |browser|
        browser.navigate.to("#{base}/")
        browser.find_element(link_text: "Batched migrations").click
        expect(browser.current_url).to eq("#{base}/schema_fence")
        expect(browser.find_element(css: "li.active[data-navbar=custom-tab]").text).to eq("Batched migrations")
        row = browser.find_element(css: "#migration-main_1")
        expect(row.text).to include("IncrementDone", "projects.id", "gitlab_main", "active", "40%", "2 done / 0 failed")

        row.find_element(css: "button[name=pause]").click
        expect(Browser.text_eventually(browser, "#notice", "paused")).to include("main_1", "paused")
        expect(Browser.text_eventually(browser, "#migration-main_1 .status", "paused")).to eq("paused")
        expect(status_of(main_url)).to eq(:paused)
        # SCHEMA_FENCE_SIDEKIQ_SCREENSHOT=docs/dashboard_sidekiq.png renews the README's picture.
        shot = ENV.fetch("SCHEMA_FENCE_SIDEKIQ_SCREENSHOT",
                         File.join(Dir.tmpdir, "schema_fence-sidekiq-#{Process.pid}.png"))
        browser.save_screenshot(shot)
        expect(File.binread(shot, 8)).to eq("\x89PNG\r\n\x1A\n".b)

        browser.find_element(css: "#migration-main_1 button[name=resume]").click
        expect(Browser.text_eventually(browser, "#migration-main_1 .status", "active")).to eq("active")
        expect(status_of(main_url)).to eq(:active)
      end
    end
  end

  it "asks the authorization callable on the POST itself: a button shown to someone no longer allowed changes nothing" do
    prepare
    SidekiqWebApp.steering = true
    sidekiq_web do |base|
      Browser.with do |browser|
        browser.navigate.to("#{base}/schema_fence")
        SidekiqWebApp.steering = false
        browser.find_element(css: "#migration-main_1 button[name=pause]").click
        expect(Browser.text_eventually(browser, "body", "steering is not authorized"))
          .to include("steering is not authorized: the dashboard is read-only")
        expect(status_of(main_url)).to eq(:active)

        browser.navigate.to("#{base}/schema_fence")
        expect(browser.find_element(css: "#migration-main_1").text).to include("active")
        expect(browser.find_elements(css: ".schema-fence button")).to be_empty
        expect(browser.find_element(css: ".schema-fence").text).to include("read-only")
      end
    end
  end

  it "is read-only unless authorized, and keeps Sidekiq's CSRF protection on its actions" do
    prepare
    sidekiq_web do |base|
      page = Net::HTTP.get(URI("#{base}/schema_fence"))
      expect(page).to include("main_1", "read-only", "Batched migrations")
      expect(page).not_to include("/schema_fence/migrations/") # no steering form

      SidekiqWebApp.steering = true
      # Authorized, but without Sidekiq's token: Sidekiq refuses before the dashboard runs.
      response = Net::HTTP.post(URI("#{base}/schema_fence/migrations/main_1/pause"), "")
      expect(response.code).to eq("403")
      expect(status_of(main_url)).to eq(:active)
    end
  end
end
