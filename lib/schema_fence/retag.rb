# frozen_string_literal: true

module SchemaFence
  # What {Install.retag} found: each row whose tag differs from what the dictionary says of its
  # table_name, the rows whose table does not resolve, and whether the changes were written.
  RetagReport = Struct.new(:changes, :unresolved, :applied, keyword_init: true) do
    alias_method :applied?, :applied

    # @return [Array<String>] one line per change and per unresolved row
    def lines
      changes.map { |c| "#{c.id} #{c.table_name}: #{c.from} -> #{c.to}" } +
        unresolved.map { |u| "#{u.id} #{u.table_name}: not in the dictionary (or gitlab_internal), cannot be tagged" }
    end
  end

  # One row to retag.
  RetagChange = Struct.new(:id, :table_name, :from, :to, keyword_init: true)

  # A row whose table does not resolve.
  UnresolvedRow = Struct.new(:id, :table_name, keyword_init: true)

  # Retagging, beside {Install.up}: tags re-derived from each row's table_name.
  module Install
    module_function

    # Compares each tracking row's tag with the gitlab_schema the dictionary gives its
    # table_name (GitLab tagged every row queued before its migration 20220503035221 with
    # gitlab_main, ci rows included) and, with +apply+, writes the differences in one
    # transaction. With a row whose table does not resolve, nothing is written.
    #
    # @param connection [ActiveRecord::ConnectionAdapters::AbstractAdapter, PG::Connection, String]
    # @param apply [Boolean] write the changes (default: only list them)
    # @param dictionary [Dictionary]
    # @return [RetagReport]
    # @raise [UnresolvedRowsError] with +apply+, when some rows do not resolve (listed)
    def retag(connection, apply: false, dictionary: SchemaFence.dictionary)
      native = Connection.native(connection)
      fields = if apply && !native.is_a?(String)
                 connection.transaction { Store._retag(native, dictionary, true) }
               else
                 Store._retag(native, dictionary, apply)
               end
      retag_report(*fields)
    end

    # The URL of each configured database, once per physical database URL (a database that
    # shares another's is configured with the same URL).
    # @return [Array<Array(String, String)>] name and URL
    def configured_urls(configuration = SchemaFence.configuration)
      configuration.databases.map { |name, config| [name, config[:url] || Connection.url_for(config[:connection_class])] }
                   .uniq(&:last)
    end

    def retag_report(changes, unresolved, applied)
      RetagReport.new(changes: changes.map { |id, table, from, to| RetagChange.new(id:, table_name: table, from:, to:) },
                      unresolved: unresolved.map { |id, table| UnresolvedRow.new(id:, table_name: table) },
                      applied:).freeze
    end
  end
end
