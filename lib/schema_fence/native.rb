# frozen_string_literal: true

# The native extension: beside this file in a clone (rake compile) and in an installed gem
# (RubyGems copies it into lib/), else in the gem's extension directory, which RubyGems puts on
# the load path.
begin
  require_relative "schema_fence.so"
rescue LoadError
  begin
    require "schema_fence/schema_fence"
  rescue LoadError => e
    raise LoadError, "schema_fence: the native extension is not built (#{e.message}); " \
                     "run `bin/setup` or `rake compile` in the gem's directory"
  end
end
