# frozen_string_literal: true

require "tmpdir"

# A real browser for the web pages: Debian's headless Chromium driven through chromedriver
# (selenium-webdriver), with the flags this closed network needs. Skips with the reason when
# Chromium is not installed (bin/setup installs it).
module Browser
  CHROMIUM = "/usr/bin/chromium"
  CHROMEDRIVER = "/usr/bin/chromedriver"

  module_function

  def with
    missing = [CHROMIUM, CHROMEDRIVER].reject { |path| File.executable?(path) }
    Clusters.send(:skip_example, "needs #{missing.join(' and ')} (Debian's chromium, chromium-driver)") unless missing.empty?
    require "selenium-webdriver"
    profile = Dir.mktmpdir("schema_fence-chromium")
    options = Selenium::WebDriver::Chrome::Options.new(
      binary: CHROMIUM,
      args: %W[--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic --no-first-run
               --disable-background-networking --disable-component-update --disable-sync
               --window-size=1500,900 --user-data-dir=#{profile}]
    )
    service = Selenium::WebDriver::Service.chrome(path: CHROMEDRIVER)
    driver = Selenium::WebDriver.for(:chrome, options:, service:)
    yield driver
  ensure
    driver&.quit
    FileUtils.rm_rf(profile) if profile
  end
end
