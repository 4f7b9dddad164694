# frozen_string_literal: true

# What bin/demo runs once the machine is ready (bin/demo installs and builds what is missing):
#
#   bin/demo                 # the split, end to end (DEMO_ROWS, DEMO_CUTOVER_AT to vary it)
#   bin/demo rollback        # the split, work on both sides, the rollback after the promotion
#   bin/demo dictionary ...  # GitLab's dictionary and the resolution rules (demo/dictionary.rb)

root = File.expand_path("..", __dir__)
$LOAD_PATH.unshift File.join(root, "lib")
require "schema_fence"

case ARGV.first
when "dictionary"
  ARGV.shift
  load File.join(root, "demo", "dictionary.rb")
when "rollback"
  load File.join(root, "demo", "rollback.rb")
else
  load File.join(root, "demo", "split.rb")
end
