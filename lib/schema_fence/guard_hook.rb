# frozen_string_literal: true

module SchemaFence
  # Checks every statement an ActiveRecord PostgreSQL connection sends while a guard is active on
  # the current thread (during a Ruby batch); a violation raises before the statement is sent.
  module GuardHook
    # The thread-local key of the active guard.
    KEY = :schema_fence_guard

    class << self
      # Runs the block with +guard+ checking this thread's statements.
      def with(guard)
        install!
        previous = Thread.current[KEY]
        Thread.current[KEY] = guard
        yield
      ensure
        Thread.current[KEY] = previous
      end

      # Checks +sql+ with this thread's guard, if one is active.
      # @raise [CrossDatabaseAccessError, GuardParseError]
      def check(sql)
        guard = Thread.current[KEY]
        guard&.check(sql)
      end

      # Prepends {AdapterMethods} to the PostgreSQL adapter, once.
      def install!
        return if @installed

        require "active_record/connection_adapters/postgresql_adapter"
        ActiveRecord::ConnectionAdapters::PostgreSQLAdapter.prepend(AdapterMethods)
        @installed = true
      end
    end

    # The adapter's entry points that send SQL (ActiveRecord 6.1 and later).
    module AdapterMethods
      # Checked, then sent.
      def execute(sql, *args, **kwargs, &)
        GuardHook.check(sql)
        super
      end

      # Checked, then sent.
      def query(sql, *args, **kwargs, &)
        GuardHook.check(sql)
        super
      end

      # Checked, then sent.
      def execute_and_clear(sql, *args, **kwargs, &)
        GuardHook.check(sql)
        super
      end
    end
  end
end
