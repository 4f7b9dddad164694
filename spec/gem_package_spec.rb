# frozen_string_literal: true

require "open3"
require "rbconfig"

# The gem as a user gets it: built from the gemspec, installed with `gem install --local` into an
# empty GEM_HOME (which builds the native extension from the shipped sources), and loaded from
# there by a fresh process that has never seen this clone.
RSpec.describe "the schema_fence gem" do
  root = File.expand_path("..", __dir__)

  def run!(env, *command, chdir:)
    out, status = Open3.capture2e(env, *command, chdir:)
    raise "#{command.join(' ')} failed:\n#{out}" unless status.success?

    out
  end

  around do |example|
    Dir.mktmpdir("schema_fence-gem-") do |dir|
      @dir = dir
      example.run
    end
  end

  it "builds, installs into an empty GEM_HOME with its native extension, and loads from there" do
    gem_file = File.join(@dir, "schema_fence.gem")
    run!({}, "gem", "build", "schema_fence.gemspec", "--output", gem_file, chdir: root)

    gem_home = File.join(@dir, "gems")
    # Kept between runs (bin/test puts it outside the clone), so that the release build reuses the
    # compiled dependencies; the gem's own crates are new sources on every install and build again.
    target = ENV.fetch("SCHEMA_FENCE_GEM_TARGET") { File.join(ENV.fetch("CARGO_TARGET_DIR", File.join(root, "target")), "gem") }
    env = { "GEM_HOME" => gem_home, "CARGO_TARGET_DIR" => target, "RB_SYS_CARGO_TARGET_DIR" => target,
            "CARGO_NET_OFFLINE" => "true" }
    run!(env, "gem", "install", "--local", "--no-document", gem_file, chdir: @dir)

    installed = Dir[File.join(gem_home, "gems", "schema_fence-*", "lib", "schema_fence", "schema_fence.so")]
    expect(installed.size).to eq(1)
    needed = run!({}, "readelf", "-d", installed.first, chdir: @dir).scan(/\(NEEDED\).*\[(.+)\]/).flatten
    expect(needed.grep(/libruby/)).to be_empty

    script = <<~RUBY
      require "schema_fence"
      native = $LOADED_FEATURES.grep(%r{/schema_fence\\.so\\z})
      dictionary = SchemaFence::Dictionary.load(ARGV[0])
      puts native, dictionary.table_schema("gitlab_partitions_dynamic.ci_builds_101")
    RUBY
    out = run!(env.merge("RUBYLIB" => nil, "RUBYOPT" => nil), RbConfig.ruby, "-e", script,
               GitlabFixtures.path("gitlab_schemas.yml"), chdir: @dir)
    native, schema = out.lines(chomp: true)
    expect(native).to start_with(gem_home)
    expect(schema).to eq("gitlab_ci")
  end
end
