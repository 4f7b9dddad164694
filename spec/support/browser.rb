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

  # The text of the element at +css+ once it includes +expected+ (or what it has after +timeout+
  # seconds): a click's answer is a new page, and the old one's elements go stale under a reader.
  def text_eventually(driver, css, expected, timeout: 10)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      text = begin
        driver.find_element(css:).text
      rescue Selenium::WebDriver::Error::StaleElementReferenceError, Selenium::WebDriver::Error::NoSuchElementError
        ""
      end
      return text if text.include?(expected) || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
  end
end
