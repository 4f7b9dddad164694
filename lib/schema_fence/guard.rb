# frozen_string_literal: true

module SchemaFence
  # The statement guard (docs/architecture.md section 9). Each SQL statement a batch sends is parsed with
  # PostgreSQL's own parser (libpg_query) and checked before it reaches the server:
  #
  # - every table it reads or writes must be in the gitlab_schemas the connection's database
  #   serves (+allowed+);
  # - every table it writes must be in the migration's gitlab_schema (+tag+), gitlab_shared or
  #   gitlab_internal;
  # - a table the dictionary does not know is refused too: nothing proves it is allowed.
  #
  # Verdicts are cached by statement text and by shape (the text with its literals as
  # parameters; no literal changes which tables a statement touches, and statements calling
  # +set_config+, whose verdict reads one, are cached by text only): a text seen before costs one
  # hash lookup, a new text of a known shape one normalize, not a full parse. The cache is
  # bounded: at most 10,000 texts and 10,000 shapes, 16 MiB of text together; a full map starts
  # again empty. A guard is safe to share between threads.
  #
  # @example
  #   guard = SchemaFence::Guard.new(dictionary: dict, allowed: %i[gitlab_main gitlab_shared gitlab_internal],
  #                                  tag: :gitlab_main)
  #   guard.check("SELECT * FROM projects")  # => nil
  #   guard.check("SELECT * FROM ci_builds") # raises SchemaFence::CrossDatabaseAccessError
  #
  # Native methods:
  # - +check(sql)+ → nil; raises {CrossDatabaseAccessError} or {GuardParseError}.
  # - +tables(sql)+ → +{read: [String], written: [String]}+, the tables the SQL reads and writes
  #   (CTE names excluded, schema prefixes kept); raises {GuardParseError}.
  # - +allowed+ → Array of Symbols; +tag+ → Symbol; +dictionary+ → {Dictionary};
  #   +cache_size+ → statement texts in the cache; +shape_cache_size+ → shapes in it.
  class Guard
    # @param dictionary [Dictionary] resolves each table to its gitlab_schema
    # @param allowed [Array<Symbol, String>] the gitlab_schemas the connection's database serves
    # @param tag [Symbol, String] the migration's gitlab_schema
    # @return [Guard]
    # @raise [ArgumentError] when +allowed+ is empty or +tag+ is blank
    def self.new(dictionary:, allowed:, tag:)
      unless dictionary.is_a?(Dictionary)
        raise ArgumentError, "dictionary: must be a SchemaFence::Dictionary, got #{dictionary.class}"
      end

      allowed = Array(allowed).map(&:to_s)
      raise ArgumentError, "allowed: must name at least one gitlab_schema" if allowed.empty?

      tag = tag.to_s
      raise ArgumentError, "tag: must name the migration's gitlab_schema" if tag.empty?

      _new(dictionary, allowed, tag)
    end

    # @return [String]

    def inspect
      "#<#{self.class.name} allowed #{allowed.join(', ')}; writes #{tag}, gitlab_shared, gitlab_internal; " \
        "#{cache_size} cached statements>"
    end
  end
end
