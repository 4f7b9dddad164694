# frozen_string_literal: true

require "json"

module SchemaFence
  # Job arguments are stored as jsonb and compared as part of a migration's key, so only JSON
  # values are accepted (no silent to_s of arbitrary objects). Symbols, as values and as Hash
  # keys, are stored as Strings, as GitLab stores them: a job reads them back as Strings.
  module JobArguments
    # How deeply Arrays and Hashes may nest (a job's arguments are a few flat values in practice).
    MAX_DEPTH = 32

    module_function

    # @return [String] the arguments as a JSON array
    # @raise [InvalidJobArgumentsError] naming the first value that is not JSON
    def to_json_array(arguments)
      arguments = normalize(arguments)
      check(arguments, "job_arguments")
      JSON.generate(arguments)
    end

    # @return [Object] +value+ with its Symbols (values and Hash keys) as Strings
    def normalize(value, depth = 0)
      # Deeper than check allows: left as it is, for check to refuse with the path.
      return value if depth > MAX_DEPTH

      case value
      when Symbol then value.to_s
      when Array then value.map { |v| normalize(v, depth + 1) }
      when Hash then value.to_h { |k, v| [k.is_a?(Symbol) ? k.to_s : k, normalize(v, depth + 1)] }
      else value
      end
    end

    # @raise [InvalidJobArgumentsError] when +value+ (at +path+) is not a JSON value, or nests
    #   deeper than {MAX_DEPTH}
    def check(value, path, depth = 0)
      if depth > MAX_DEPTH
        raise InvalidJobArgumentsError, "job arguments nest deeper than #{MAX_DEPTH} levels " \
                                        "(at #{path[0, 80]}...); pass flat values"
      end

      case value
      when nil, true, false, String, Integer then nil
      when Float then check_float(value, path)
      when Array then value.each_with_index { |v, i| check(v, "#{path}[#{i}]", depth + 1) }
      when Hash
        value.each do |k, v|
          invalid("#{path} key", k, "is not a String") unless k.is_a?(String)
          check(v, "#{path}[#{k.inspect}]", depth + 1)
        end
      else
        invalid(path, value, "is a #{value.class}, which cannot be stored as JSON")
      end
    end

    # @raise [InvalidJobArgumentsError] when +value+ is not finite
    def check_float(value, path)
      invalid(path, value, "is not a finite number") unless value.finite?
    end

    def invalid(path, value, why)
      raise InvalidJobArgumentsError, "#{path} #{value.inspect[0, 80]} #{why}; job arguments must be JSON " \
                                      "values (nil, true, false, numbers, Strings, Arrays, Hashes with String keys)"
    end
  end
end
