# frozen_string_literal: true

require_relative "lib/schema_fence/version"

Gem::Specification.new do |spec|
  spec.name = "schema_fence"
  spec.version = SchemaFence::VERSION
  spec.summary = "Keeps batched background migrations on the right database while a Rails app splits its database"
  spec.description = <<~TEXT
    schema_fence tags every batched background migration with the gitlab_schema of the table it
    migrates, lets each database's worker fetch only what its database serves, fences workers by an
    identity stored in each database and drives the cutover of a database split. Rust core.
  TEXT
  spec.authors = ["schema_fence developers"]
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.1"
  # What the build of the native extension needs ships too: the core crate (src/), the binding
  # crate (ext/), the workspace manifest and its lock file, and the testkit crates the workspace
  # names (crates/: built only by rake compile in the repository, never by the gem's install). A
  # built .so never ships: it is built against the installing Ruby.
  spec.files = Dir["lib/**/*.rb", "lib/**/*.rake", "lib/**/*.erb", "lib/**/*.css", "lib/generators/**/templates/*", "src/**/*.rs",
                   "ext/**/*.{rs,toml,rb}", "crates/**/*.{rs,toml}", "Cargo.toml", "Cargo.lock",
                   "Rakefile", "README.md", "CHANGELOG.md"]
  spec.extensions = ["ext/schema_fence/extconf.rb"]
  spec.require_paths = ["lib"]
  spec.add_dependency "activerecord", ">= 6.1"
  spec.add_dependency "pg", ">= 1.2"
  spec.add_dependency "ruby-progressbar", ">= 1.10"
  spec.add_dependency "terminal-table", ">= 1.8"
  spec.metadata["rubygems_mfa_required"] = "true"
end
