# frozen_string_literal: true

require "json"
require "time"
require "pg"
require "terminal-table"
require "ruby-progressbar"
require "ruby-progressbar/outputs/null"
require "active_support/number_helper"

module SchemaFence
  # No migration has this id (ids look like +main_12+: a configured database and a row id); the
  # message names the known ones.
  class UnknownMigrationError < Error; end

  # The migration is a stale row: the database holding it no longer serves its tag (it was left
  # behind by the split), so it is never run and is not to be steered.
  class StaleMigrationError < Error; end

  # The migration's status does not allow the operation (pausing a finished migration, ...).
  class MigrationStateError < Error; end

  # What every configured database (see {Configuration#database}) holds: its identity, and each
  # batched background migration with its progress, batches, rate and the time left.
  #
  #   status = SchemaFence::Status.collect
  #   puts status.to_text          # tables, as `rake schema_fence:status` prints them
  #   puts status.to_json          # for scripts (`rake schema_fence:status FORMAT=json`)
  #   status.find("ci_3").progress # => 0.42
  #
  # Migration ids are the database's name and the row's id (+main_12+, +ci_3+): a row exists in
  # one database, and after a split both databases number their rows from the same sequence.
  class Status
    # How many of the latest job status changes each migration shows.
    TRANSITIONS_SHOWN = 5

    # One configured database. +state+ is +:owner+ (its identity is this database: its
    # migrations are listed), +:shared+ (another database's identity serves it, before the
    # split: its migrations are listed under that database), +:misrouted+ (the connection
    # reached a database that does not serve it), +:not_installed+ or +:unreachable+; +note+
    # says why, for every state but +:owner+. +claims_paused+ is true while a cutover holds
    # batch claims on this database (from its pause step to its resume step).
    # +reverse_replications+ lists the reverse replications of a split this database receives
    # (+name+, and +seconds+ since it last heard from the new database).
    Database = Struct.new(:name, :url, :identity, :state, :note, :claims_paused, :migrations, :reverse_replications,
                          keyword_init: true) do
      # @return [Hash] for JSON (without the URL, which may hold a password)
      def to_h
        { name:, state:, note:, identity: identity&.to_h&.merge(stamped_at: identity.stamped_at.to_s), claims_paused:,
          reverse_replications: reverse_replications || [], migrations: migrations.map(&:to_h) }
      end
    end

    # One migration. +status+ is +:stale+ for a stale row (+stored_status+ keeps the status in
    # the row); +progress+ is the fraction of the key range covered; +batches_failed+ counts
    # the batches whose last attempt failed (retried or not) and +last_error+ is the error of the
    # latest of them; +rate+ is keys per second over the wall time of the latest succeeded batches
    # (nil for a stale, finished or failed migration); +eta+ the seconds left at that rate,
    # counted from the latest batch's finish, so it goes down as time passes (nil when unknown or
    # not running, 0 once finished). +waiting+ is why an active migration is not running now
    # (see {Migration}; nil when it runs) and +waiting_note+ says it in words; +hold+ says "on hold
    # until … because …" while a health indicator (or anyone) holds it. +transitions+ the latest
    # status changes of its batches from GitLab's job transition log, newest first (Hashes of
    # {TransitionLog::Transition}).
    Entry = Struct.new(:id, :database, :row_id, :job_class_name, :table_name, :column_name, :job_arguments,
                       :gitlab_schema, :status, :stored_status, :stale, :progress, :min_value, :max_value,
                       :keys_done, :batches_done, :batches_failed, :last_error, :rate, :eta, :not_runnable,
                       :waiting, :waiting_note, :hold, :transitions, keyword_init: true) do
      alias_method :tag, :gitlab_schema
      alias_method :stale?, :stale
    end

    # Reads every configured database.
    #
    # @param configuration [Configuration]
    # @return [Status]
    def self.collect(configuration = SchemaFence.configuration)
      new(configuration.databases.map { |name, config| read_database(name, config) })
    end

    # @param databases [Array<Database>]
    # @param generated_at [Time]
    def initialize(databases, generated_at: Time.now)
      @databases = databases.freeze
      @generated_at = generated_at
    end

    # @return [Array<Database>]
    attr_reader :databases

    # @return [Time]
    attr_reader :generated_at

    # @return [Array<Entry>] the migrations of every database, in database then queue order
    def migrations
      databases.flat_map(&:migrations)
    end

    # @param name [String, Symbol]
    # @return [Database, nil]
    def database(name)
      databases.find { |d| d.name == name.to_s }
    end

    # The migration with this id.
    #
    # @param id [String] e.g. "main_12"
    # @return [Entry]
    # @raise [UnknownMigrationError] naming the known ids, or why the database lists none
    def find(id)
      name, row_id = id.to_s.match(/\A(.+)_(\d+)\z/)&.captures
      db = name && database(name)
      raise UnknownMigrationError, unknown_message(id) unless db
      raise UnknownMigrationError, "#{id}: #{db.note}" unless db.state == :owner

      # Decimal always: "main_010" is migration 10, never octal 8.
      db.migrations.find { |m| m.row_id == Integer(row_id, 10) } || raise(UnknownMigrationError, unknown_message(id))
    end

    # @return [Hash]
    def to_h
      { generated_at: generated_at.utc.iso8601, databases: databases.map(&:to_h) }
    end

    # @return [String] JSON of {#to_h}
    def to_json(*args)
      to_h.to_json(*args)
    end

    # @return [String] one table per database, with a progress bar per migration
    def to_text
      databases.map { |db| TextRenderer.table(db).to_s }.join("\n\n") << "\n"
    end

    class << self
      private

      def read_database(name, config)
        url = config[:url] || Connection.url_for(config[:connection_class])
        report = Store._report(url, SchemaFence.configuration.topology_path && SchemaFence.topology)
        identity = report.identity&.then { |row| Identity.from_row(row) }
        state, note = state_of(name, identity)
        migrations = state == :owner ? entries(name, url, report) : []
        reverse_replications = state == :owner ? Cutover.reverse_replications(url) : []
        Database.new(name:, url:, identity:, state:, note:, claims_paused: report.claims_paused, migrations:,
                     reverse_replications:)
      rescue Error, PG::Error => e
        Database.new(name:, url:, identity: nil, state: :unreachable, note: "cannot read #{name}: #{e.message}",
                     claims_paused: false, migrations: [])
      end

      def state_of(name, identity)
        return [:not_installed, "#{name} has no schema_fence identity: run the install migration on it"] unless identity

        stamped = "#{identity.name} serving #{identity.serves.join(', ')}"
        unless identity.serves.include?(name)
          return [:misrouted, "#{name}'s connection reached the database stamped #{stamped}: it is mis-pointed, " \
                              "fix its configuration (workers refuse it with MisroutedConnectionError)"]
        end
        return [:owner, nil] if identity.name == name

        [:shared, "#{name} shares the database of #{identity.name} (#{stamped}): its migrations are listed " \
                  "and steered as #{identity.name}_<id>"]
      end

      def entries(name, url, report)
        reported = report.migrations
        rows = reported.map { |r| Migrations.build(r.row, stale: r.stale) }
        transitions = TransitionLog.recent(url, rows.map(&:id), limit: TRANSITIONS_SHOWN)
        reported.zip(rows).map { |r, row| entry(name, row, rows, reported: r, transitions: transitions[row.id]) }
      end

      def entry(name, row, rows, reported:, transitions:)
        total = row.min_value && row.max_value ? row.max_value - row.min_value + 1 : 0
        status = row.stale? ? :stale : row.status
        waiting = row.waiting unless row.stale?
        Entry.new(id: "#{name}_#{row.id}", database: name, row_id: row.id, job_class_name: row.job_class_name,
                  table_name: row.table_name, column_name: row.column_name, job_arguments: row.job_arguments,
                  gitlab_schema: row.gitlab_schema, status:, stored_status: row.status, stale: row.stale?,
                  progress: row.progress, min_value: row.min_value, max_value: row.max_value,
                  keys_done: (row.progress * total).round, batches_done: row.jobs_succeeded,
                  batches_failed: row.jobs_failed, last_error: reported.last_error, rate: reported.rate,
                  eta: reported.eta, not_runnable: row.not_runnable,
                  waiting:, waiting_note: waiting && Waiting.note(name, row, rows),
                  hold: hold_of(row, waiting),
                  transitions: Array(transitions).map(&:to_h)).freeze
      end

      def hold_of(row, waiting)
        Waiting.on_hold(row) if waiting == :on_hold
      end
    end

    private

    def unknown_message(id)
      known = migrations.map(&:id)
      listed = known.empty? ? "no migration is listed" : "known ids: #{known.join(', ')}"
      "no migration #{id.to_s.inspect} on #{databases.map(&:name).join(', ')} (#{listed}; see rake schema_fence:status)"
    end

    # Renders a {Database} as a Terminal::Table with ProgressBar bars.
    module TextRenderer
      # The columns of a database's table.
      HEADINGS = ["id", "job", "table", "tag", "status", "progress", "batches", "rate", "time left"].freeze
      # The width of a progress bar, its percentage included.
      BAR_LENGTH = 28

      module_function

      # @param db [Database]
      # @return [Terminal::Table]
      def table(db)
        rows = db.migrations.map { |m| row(m) }
        rows = [[{ value: db.note || "no batched background migrations", colspan: HEADINGS.size }]] if rows.empty?
        Terminal::Table.new(title: title(db), headings: HEADINGS, rows:)
      end

      # @param db [Database]
      # @return [String] the database's name and identity
      def title(db)
        identity = db.identity
        return "#{db.name}: #{db.state.to_s.tr('_', ' ')}" unless identity

        serving = identity.serves.empty? ? "serving nothing (retired)" : "serving #{identity.serves.join(', ')}"
        "#{db.name}: identity #{identity.name} #{serving}, epoch #{identity.epoch}" \
          "#{', claims paused by a cutover' if db.claims_paused}#{reverse(db)}"
      end

      # @param db [Database]
      # @return [String] the reverse replications it receives, with their lag
      def reverse(db)
        Array(db.reverse_replications).map do |r|
          lag = r[:seconds] ? format("%.1fs", r[:seconds]) : "no message yet"
          ", receives reverse replication #{r[:name]} (last message #{lag} ago)"
        end.join
      end

      # @param entry [Entry]
      # @return [Array] the cells of a migration's row
      def row(entry)
        [entry.id, entry.job_class_name, "#{entry.table_name}.#{entry.column_name}", entry.gitlab_schema,
         status_cell(entry), bar(entry.progress),
         "#{entry.batches_done} done / #{entry.batches_failed} failed", rate(entry.rate), duration(entry.eta)]
      end

      # @param entry [Entry]
      # @return [String] the status, and why a row is stale or not runnable
      def status_cell(entry)
        return "stale (#{entry.stored_status})" if entry.stale?
        return "#{entry.status}, not runnable: #{entry.not_runnable}" if entry.not_runnable
        return "#{entry.status}, #{entry.hold}" if entry.hold
        return "#{entry.status}: #{entry.waiting_note}" if entry.waiting_note && entry.waiting != :paused

        entry.status.to_s
      end

      # @param fraction [Float] 0.0 to 1.0
      # @return [String] e.g. "[==========          ]  37%"
      def bar(fraction)
        ProgressBar.create(total: 1000, starting_at: (fraction.clamp(0.0, 1.0) * 1000).floor, length: BAR_LENGTH,
                           output: ProgressBar::Outputs::Null).to_s("[%B] %p%%")
      end

      # @param rate [Float, nil] keys per second
      # @return [String] e.g. "2.3 keys/s", "12,346 keys/s", "-"
      def rate(rate)
        return "-" unless rate

        "#{rate < 10 ? format('%.1f', rate) : ActiveSupport::NumberHelper.number_to_delimited(rate.round)} keys/s"
      end

      # @param seconds [Integer, nil]
      # @return [String] e.g. "2h 05m", "3m 20s", "-"
      def duration(seconds)
        return "-" unless seconds
        return "done" if seconds.zero?

        days, rest = seconds.divmod(86_400)
        hours, rest = rest.divmod(3600)
        minutes, secs = rest.divmod(60)
        return format("%<d>dd %<h>02dh", d: days, h: hours) if days.positive?
        return format("%<h>dh %<m>02dm", h: hours, m: minutes) if hours.positive?
        return format("%<m>dm %<s>02ds", m: minutes, s: secs) if minutes.positive?

        "#{secs}s"
      end
    end
  end
end
