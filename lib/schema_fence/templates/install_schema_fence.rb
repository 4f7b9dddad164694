# frozen_string_literal: true

# Copy into db/migrate/ (with a timestamp prefix) of every database the app has: it creates the
# tracking tables and stamps this database's identity, and upgrades GitLab-shaped tracking tables
# that predate the gitlab_schema tag (each row tagged from its own table_name).
class InstallSchemaFence < ActiveRecord::Migration[6.1]
  # Creates the tracking tables and stamps the identity.
  def up
    report = SchemaFence::Install.up(connection)
    identity = report.identity
    say "schema_fence installed: #{identity.name} serving #{identity.serves.join(', ')} (epoch #{identity.epoch})"
    say "#{report.backfilled} existing migrations tagged from their table_name" if report.backfilled.positive?
    say "#{report.mistagged} migrations mis-tagged: see rake schema_fence:retag" if report.mistagged&.positive?
  end

  # Refused: dropping the tables would lose every migration's progress.
  def down
    raise ActiveRecord::IrreversibleMigration,
          "dropping the tracking tables would lose the progress of every batched background migration"
  end
end
