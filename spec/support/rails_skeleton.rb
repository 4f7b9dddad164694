# frozen_string_literal: true

require "active_record"
require "erb"
require "fileutils"
require "open3"
require "rbconfig"

# A Rails app of the stack's version (6.1 on Debian 12, 7.2 on Debian 13) written file by file
# into a temporary directory, as `rails new` would leave it
# minus what it needs from the network: config/boot.rb puts this gem's lib on the load path
# where a Gemfile would have `gem "schema_fence"`. Commands run as `ruby bin/rails ...` in a
# process of their own (a Rails app initializes once per process).
class RailsSkeleton
  GEM_LIB = File.expand_path("../../lib", __dir__)
  # The Rails version the app is made with, as `rails new` writes it (load_defaults, Migration[]).
  VERSION = "#{ActiveRecord::VERSION::MAJOR}.#{ActiveRecord::VERSION::MINOR}".freeze

  FILES = {
    "config.ru" => "require_relative \"config/environment\"\nrun Rails.application\n",
    "config/boot.rb" => <<~RUBY,
      # Stands in for Bundler and a Gemfile with `gem "schema_fence"`.
      $LOAD_PATH.unshift #{GEM_LIB.inspect}
    RUBY
    "config/application.rb" => <<~RUBY,
      require_relative "boot"
      require "rails"
      require "active_record/railtie"
      require "sidekiq"      # Bundler.require would do these
      begin
        require "sidekiq-cron" # where the stack has it (Debian 13 has no package)
      rescue LoadError
        nil
      end
      require "schema_fence"

      module SkeletonApp
        class Application < Rails::Application
          config.load_defaults #{VERSION}
          config.eager_load = false
          config.secret_key_base = "skeleton"
          config.active_record.dump_schema_after_migration = false
          config.active_record.schema_format = ENV.fetch("SCHEMA_FORMAT", "ruby").to_sym
          # Rails 7.2+: the app holds schema_fence to leased connections (see spec_helper).
          config.active_record.permanent_connection_checkout = :disallowed if ActiveRecord.respond_to?(:permanent_connection_checkout=)
          config.log_level = :debug
        end
      end
    RUBY
    "config/environment.rb" => "require_relative \"application\"\nRails.application.initialize!\n",
    "Rakefile" => "require_relative \"config/application\"\nRails.application.load_tasks\n",
    "bin/rails" => <<~RUBY
      #!/usr/bin/env ruby
      APP_PATH = File.expand_path("../config/application", __dir__)
      require_relative "../config/boot"
      require "rails/commands"
    RUBY
  }.freeze

  # What a command printed and how it exited.
  Result = Struct.new(:out, :err, :status, keyword_init: true) do
    def success? = status.success?

    def to_s
      "exit #{status.exitstatus}\n--- stdout\n#{out}\n--- stderr\n#{err}"
    end
  end

  attr_reader :root

  # @param databases [Hash{String => String, Hash}] database.yml entries: name => PostgreSQL URL
  #   (or settings, see {database_yml})
  def initialize(root, databases:)
    @root = root
    @databases = databases
    write_app
  end

  # Rewrites config/database.yml with other entries (name => PostgreSQL URL).
  def databases=(databases)
    @databases = databases
    write("config/database.yml", database_yml)
  end

  def write(relative, text)
    path = File.join(root, relative)
    FileUtils.mkdir_p(File.dirname(path))
    File.write(path, text)
    path
  end

  def read(relative)
    File.read(File.join(root, relative))
  end

  def exist?(relative)
    File.exist?(File.join(root, relative))
  end

  def glob(pattern)
    Dir.chdir(root) { Dir[pattern] }
  end

  # Runs `ruby bin/rails *args` in the app's directory, with no DATABASE_URL from the suite's
  # environment (Rails would merge it into the primary database's configuration).
  # @return [Result]
  def rails(*args, env: {})
    out, err, status = Open3.capture3(clean_env.merge(env), RbConfig.ruby, "bin/rails", *args, chdir: root)
    Result.new(out:, err:, status:)
  end

  # Starts a long-running command of the app (e.g. +sidekiq+) in its directory, with the same
  # environment as {rails}, its output appended to +log+.
  # @return [Integer] the process id, for the caller to stop and wait for
  def spawn_in_app(*command, log:, env: {})
    spawn(clean_env.merge(env), *command, chdir: root, out: [log, "a"], err: [log, "a"])
  end

  # Like {rails}, raising with the output unless the command succeeded.
  def rails!(*args, env: {})
    result = rails(*args, env:)
    raise "bin/rails #{args.join(' ')} failed: #{result}" unless result.success?

    result
  end

  private

  def clean_env
    ENV.keys.grep(/DATABASE_URL\z|\ABUNDLE_|\ARUBYOPT\z|\ARAILS_ENV\z/).to_h { |k| [k, nil] }
  end

  def write_app
    FILES.each { |relative, text| write(relative, text) }
    write("config/database.yml", database_yml)
    FileUtils.chmod(0o755, File.join(root, "bin/rails"))
    FileUtils.mkdir_p(File.join(root, "db", "migrate"))
  end

  # Each entry is a URL, or a Hash of settings with +url+ (e.g. database_tasks: false).
  def database_yml
    entries = @databases.map do |name, entry|
      settings = entry.is_a?(Hash) ? entry : { url: entry }
      "  #{name}:\n    adapter: postgresql\n#{settings.map { |k, v| "    #{k}: #{v}\n" }.join}"
    end
    "development:\n#{entries.join}"
  end
end
