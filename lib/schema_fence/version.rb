# frozen_string_literal: true

module SchemaFence
  VERSION = "0.1.0"
end
