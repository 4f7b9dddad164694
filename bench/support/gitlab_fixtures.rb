# frozen_string_literal: true

module SchemaFence
  module Bench
    # GitLab's own data the benches run on (../shared/fixtures/gitlab): its table map and its
    # three-database connection files.
    module GitlabFixtures
      DIR = File.expand_path("../../../shared/fixtures/gitlab", __dir__)

      module_function

      # Configures SchemaFence with GitLab's table map and connection files; the block, if any,
      # adds a bench's own settings.
      def configure
        SchemaFence.configure do |c|
          c.dictionary_paths = [File.join(DIR, "gitlab_schemas.yml")]
          c.topology_path = File.join(DIR, "database_connections")
          yield c if block_given?
        end
      end

      # GitLab's table map, loaded.
      def dictionary = SchemaFence::Dictionary.load(File.join(DIR, "gitlab_schemas.yml"))
    end
  end
end
