# frozen_string_literal: true

begin
  require_relative "schema_fence.so"
rescue LoadError => e
  raise LoadError, "schema_fence: the native extension is not built (#{e.message}); " \
                   "run `bin/setup` or `rake compile` in the gem's directory"
end
