# frozen_string_literal: true

# Builds the native part of schema_fence when the gem is installed: the cdylib of the crate
# beside this file (schema_fence_ext, the Ruby binding of the core crate at the gem's root),
# installed as schema_fence/schema_fence.so. Needs cargo (rustup's ~/.cargo/bin is looked at too).
#
# Two ways, one result:
# - with the rb_sys gem (Debian 13 packages it as ruby-rb-sys; rubygems.org has it), its
#   create_rust_makefile, which knows cross-compilation and Ruby's own build settings;
# - without it (Debian 12 has no package), a Makefile of our own around `cargo build --release`.
# Neither links libruby: the library resolves Ruby's symbols from the process that loads it.

require "mkmf"
require "rbconfig"

cargo_bin = File.join(Dir.home, ".cargo", "bin")
ENV["PATH"] = [ENV.fetch("PATH", ""), cargo_bin].join(File::PATH_SEPARATOR) if File.directory?(cargo_bin)
abort "schema_fence: cargo (Rust) is needed to build the native extension and was not found" unless find_executable("cargo")

manifest = File.expand_path("Cargo.toml", __dir__)
use_rb_sys = ENV["SCHEMA_FENCE_NO_RB_SYS"].nil? &&
             begin
               require "rb_sys/mkmf"
               true
             rescue LoadError
               false
             end

if use_rb_sys
  create_rust_makefile("schema_fence/schema_fence") { |r| r.profile = :release }
  # rb_sys names the library after the target (libschema_fence.so); the crate is schema_fence_ext,
  # since its dependency, the core crate, is schema_fence.
  makefile = File.read("Makefile")
  rustlib = "RUSTLIB = $(RUSTLIBDIR)/$(SOEXT_PREFIX)$(TARGET_NAME).$(SOEXT)"
  abort "schema_fence: this rb_sys writes a Makefile without `#{rustlib}`" unless makefile.include?(rustlib)
  File.write("Makefile", makefile.sub(rustlib, "RUSTLIB = $(RUSTLIBDIR)/$(SOEXT_PREFIX)schema_fence_ext.$(SOEXT)"))
else
  File.write("Makefile", <<~MAKE)
    # Written by extconf.rb (no rb_sys): cargo builds the cdylib, install copies it where RubyGems
    # (or `make install`) wants it.
    CARGO ?= cargo
    CARGO_TARGET_DIR ?= $(CURDIR)/target
    export CARGO_TARGET_DIR
    sitearchdir ?= #{RbConfig::CONFIG['sitearchdir']}
    DLLIB = schema_fence.#{RbConfig::CONFIG['DLEXT']}

    all: $(DLLIB)

    $(DLLIB): FORCE
    \t$(CARGO) build --release --manifest-path #{manifest} --package schema_fence_ext
    \tcp "$(CARGO_TARGET_DIR)/release/libschema_fence_ext.so" $(DLLIB)

    install: $(DLLIB)
    \tmkdir -p "$(DESTDIR)$(sitearchdir)/schema_fence"
    \tcp $(DLLIB) "$(DESTDIR)$(sitearchdir)/schema_fence/$(DLLIB)"

    clean:
    \trm -f $(DLLIB)

    FORCE:
    .PHONY: all install clean FORCE
  MAKE
end
