# frozen_string_literal: true

# A Rails app that keeps its schema in db/schema.rb (or db/structure.sql) and sets up new
# databases by loading it (db:schema:load, db:setup, db:test:prepare) instead of migrating: the
# dump of an installed database loads back, and the loaded database gets its identity and works.
RSpec.describe "Loading a dumped schema", :postgres do
  before(:all) do
    @dir = Dir.mktmpdir("schema_fence-schema-load")
    @installed_url = Clusters.fresh_database("dumped")
    @app = RailsSkeleton.new(@dir, databases: { "main" => @installed_url })
    FileUtils.cp_r(GitlabFixtures.path("database_connections"), File.join(@dir, "db"))
    @app.write("lib/gitlab/database/gitlab_schemas.yml", "ci_builds: :gitlab_ci\nprojects: :gitlab_main\n")
    @app.rails!("generate", "schema_fence:install")
    @app.rails!("db:migrate")
  end

  after(:all) { FileUtils.rm_rf(@dir) }

  let(:app) { @app }

  def load_into_fresh_database(format)
    app.databases = { "main" => @installed_url }
    app.rails!("db:schema:dump", env: { "SCHEMA_FORMAT" => format })
    url = Clusters.fresh_database("loaded_#{format}")
    app.databases = { "main" => url }
    [url, app.rails!("db:schema:load", env: { "SCHEMA_FORMAT" => format })]
  end

  def works_there(url)
    result = app.rails!("runner", "puts [SchemaFence::Worker.for(:main).run_once.status, " \
                                  "SchemaFence::Worker.for(:ci).run_once.status].inspect")
    expect(result.out.lines.last).to eq("[:nothing, :idle]\n")
    expect(SchemaFence::Identity.read(url).to_h).to include(name: "main", serves: %w[main ci], epoch: 0)
  end

  it "dumps a schema.rb whose checks are named and load back, and stamps the identity after db:schema:load" do
    url, loaded = load_into_fresh_database("ruby")
    schema = app.read("db/schema.rb")
    expect(schema).not_to include("check_constraint nil")
    expect(schema).to include(%(t.check_constraint "singleton = true", name: "check_singleton"))
    expect(loaded.out).to include("schema_fence identity: main serving main, ci (epoch 0)")
    works_there(url)
  end

  it "does the same with db/structure.sql" do
    url, loaded = load_into_fresh_database("sql")
    expect(app.read("db/structure.sql")).to include("CONSTRAINT check_singleton CHECK ((singleton = true))")
    expect(loaded.out).to include("schema_fence identity: main serving main, ci (epoch 0)")
    works_there(url)
  end

  it "stamps nothing twice: schema_fence:identity:stamp on a stamped database keeps its identity" do
    url, = load_into_fresh_database("ruby")
    before = SchemaFence::Identity.read(url)
    out = app.rails!("schema_fence:identity:stamp").out
    expect(out).to include("schema_fence identity: main serving main, ci (epoch 0)")
    expect(SchemaFence::Identity.read(url)).to eq(before)
  end
end
