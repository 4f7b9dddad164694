# frozen_string_literal: true

# The native methods take their options as one Hash read by name and answer with objects that
# have readers: a misspelt or mistyped option is refused with its name, never ignored or read
# from the wrong position.
RSpec.describe "the native boundary", :native do
  let(:topology) { SchemaFence::Topology.load(GitlabFixtures.path("database_connections")) }
  let(:url) { "postgresql://127.0.0.1:1/none" }

  describe "a runner's settings" do
    it "are checked by the core, which names the one out of range" do
      expect { SchemaFence::Runner._new(url, "main", topology, { lease: 0.0 }) }
        .to raise_error(SchemaFence::InvalidArgumentError, /lease: must be a positive number of seconds, got 0/)
      expect { SchemaFence::Runner._new(url, "main", topology, { max_attempts: 0 }) }
        .to raise_error(SchemaFence::InvalidArgumentError, /max_attempts: must be between 1 and 100, got 0/)
    end

    it "refuse an option the runner does not take, naming it" do
      expect { SchemaFence::Runner._new(url, "main", topology, { leese: 5.0 }) }
        .to raise_error(SchemaFence::InvalidArgumentError, /Runner.new: unknown option :leese/)
    end

    it "refuse an option of the wrong type, naming it" do
      expect { SchemaFence::Runner._new(url, "main", topology, { lease: "long" }) }
        .to raise_error(SchemaFence::InvalidArgumentError, /Runner.new: option lease: /)
    end
  end

  describe "a cutover's settings" do
    let(:dictionary) { SchemaFence::Dictionary.load(GitlabFixtures.path("gitlab_schemas.yml")) }

    it "are checked by the core, which names the timeout out of range" do
      expect { SchemaFence::Cutover._new(topology, dictionary, { source_url: url, target_url: url, catch_up_timeout: 0.0 }) }
        .to raise_error(SchemaFence::InvalidArgumentError, /catch_up_timeout: must be a positive number of seconds/)
    end

    it "refuse an option the cutover does not take, and need both URLs" do
      expect { SchemaFence::Cutover._new(topology, dictionary, { source_url: url, target_url: url, promte: false }) }
        .to raise_error(SchemaFence::InvalidArgumentError, /Cutover.new: unknown option :promte/)
      expect { SchemaFence::Cutover._new(topology, dictionary, { source_url: url }) }
        .to raise_error(SchemaFence::InvalidArgumentError, /Cutover.new: option target_url is missing/)
    end
  end

  describe "queueing" do
    let(:dictionary) { SchemaFence::Dictionary.load(GitlabFixtures.path("gitlab_schemas.yml")) }

    it "refuses a queue option it does not know before touching the database" do
      request = { job_class_name: "Backfill", table_name: "ci_builds", column_name: "id", batch_sise: 10 }
      expect { SchemaFence::Store._queue(url, dictionary, request) }
        .to raise_error(SchemaFence::InvalidArgumentError, /queue: unknown option :batch_sise/)
    end

    it "needs the migration's key" do
      expect { SchemaFence::Store._queue(url, dictionary, { table_name: "ci_builds", column_name: "id" }) }
        .to raise_error(SchemaFence::InvalidArgumentError, /queue: option job_class_name is missing/)
    end
  end
end
